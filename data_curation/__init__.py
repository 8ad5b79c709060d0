"""Data curation: animated 3D assets -> orbital 4D dataset (dynamic/static/front/four-view clips,
cameras, motion magnitude, keep/drop decisions). See docs/curation.md.

Import-light: the renderers and the glTF evaluator load on first use.
"""

from __future__ import annotations


def render_clip(asset_path, cameras, renderer: str = "fast", **options):
    """See :func:`diffusion4d.data_curation.render.render_clip` (contract 2)."""
    from .render import render_clip as _render_clip

    return _render_clip(asset_path, cameras, renderer=renderer, **options)


def load_asset_duration(asset_path, animation="longest") -> float:
    """Seconds of the asset's selected animation (0 when it has none)."""
    from .render import load_asset_duration as _load

    return _load(asset_path, animation)


__all__ = ["load_asset_duration", "render_clip"]
