"""4D Gaussian reconstruction from orbital videos (coarse static fit + deformation field).

Entry point: :func:`reconstruct` (``from recon import reconstruct``); command line:
``diffusion4d reconstruct``. Rasterizer backends: :func:`recon.rasterize.rasterize`.
"""

from __future__ import annotations

from typing import Any


def reconstruct(*args: Any, **kwargs: Any) -> dict:
    """See :func:`recon.pipeline.reconstruct` (imported lazily: torch loads only when called)."""
    from recon.pipeline import reconstruct as _reconstruct

    return _reconstruct(*args, **kwargs)


__all__ = ["reconstruct"]
