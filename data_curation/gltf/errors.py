"""The error every bad asset raises: its message becomes the manifest ``reason``."""


class AssetError(Exception):
    """An asset that cannot be loaded or rendered.

    ``kind`` is a short machine-readable category (``truncated``, ``corrupt``,
    ``accessor_out_of_range``, ``non_finite``, ``missing_buffer``, ``missing_texture``,
    ``no_triangles``, ``absurd_size``, ``unsupported``); ``str(err)`` is ``"<kind>: <details>"``.
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
