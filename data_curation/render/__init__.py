"""Rendering backends behind one function, :func:`render_clip` (contract 2).

``renderer="fast"``: our glTF evaluator + moderngl (:mod:`.fast`).
``renderer="blender"``: a Blender subprocess (:mod:`.blender`), any format Blender imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Tuple, Union

import numpy as np

from diffusion4d.cameras import CameraTrajectory

RENDERERS = ("fast", "blender")
Normalize = Literal["t0", "all"]


@dataclass
class Normalization:
    """``p_unit = (p_world - center) * scale``: the object's bounding box fits the unit cube."""

    center: np.ndarray  # [3]
    scale: float
    extent: float  # largest side of the box before scaling


def _bounds(items) -> Tuple[np.ndarray, np.ndarray]:
    pts = [it.positions[np.unique(it.indices)] for it in items if len(it.indices)]
    allp = np.concatenate(pts)
    return allp.min(0), allp.max(0)


class AssetRenderer:
    """Loads one asset once and renders any number of trajectories with the fast renderer.

    Raises :class:`diffusion4d.data_curation.gltf.AssetError` for assets that cannot be rendered
    (no triangles, NaN/Inf after posing, absurd size, ...).
    """

    def __init__(self, asset_path, animation: Union[str, int] = "longest", normalize: Normalize = "t0",
                 msaa: int = 4, max_extent: float = 1e6, min_extent: float = 1e-6):
        from ..gltf import AssetError, load_scene

        self.path = Path(asset_path)
        self.scene = load_scene(self.path, animation)
        self.msaa = msaa
        self._renderers = {}
        times = [0.0] if normalize == "t0" else np.linspace(0.0, 1.0, 25)
        lo, hi = None, None
        for t in times:
            items = self.scene.evaluate(self.scene.time_at(t))
            if not any(len(it.indices) for it in items):
                raise AssetError("no_triangles", f"{self.path.name} has no triangles to render")
            for it in items:
                if not np.all(np.isfinite(it.positions)):
                    raise AssetError("non_finite", f"posed vertex positions hold NaN/Inf at time {t:.3f}")
            a, b = _bounds(items)
            lo = a if lo is None else np.minimum(lo, a)
            hi = b if hi is None else np.maximum(hi, b)
        extent = float(np.max(hi - lo))
        if not np.isfinite(extent) or extent > max_extent or extent < min_extent:
            raise AssetError("absurd_size", f"bounding box side {extent:.3g} is outside [{min_extent:g}, {max_extent:g}]")
        self.normalization = Normalization(center=(lo + hi) / 2.0, scale=1.0 / extent, extent=extent)

    @property
    def duration(self) -> float:
        return self.scene.duration

    @property
    def has_animation(self) -> bool:
        return self.scene.animation is not None and self.scene.duration > 0

    def render(self, cameras: CameraTrajectory) -> np.ndarray:
        """[N, H, W, 4] uint8; frame i at camera i and normalised time ``cameras.frames[i].time``."""
        from .fast import FastRenderer

        key = (cameras.width, cameras.height)
        if key not in self._renderers:
            self._renderers[key] = FastRenderer(cameras.width, cameras.height, msaa=self.msaa)
        r = self._renderers[key]
        norm = self.normalization
        out = np.zeros((len(cameras), cameras.height, cameras.width, 4), np.uint8)
        cache = {}
        for i, frame in enumerate(cameras.frames):
            if frame.time not in cache:
                cache = {frame.time: self.scene.evaluate(self.scene.time_at(frame.time))}
            out[i] = r.render(cache[frame.time], frame.c2w, frame.K, norm.center, norm.scale)
        return out

    def close(self) -> None:
        for r in self._renderers.values():
            r.release()
        self._renderers.clear()


def load_asset_duration(asset_path, animation: Union[str, int] = "longest") -> float:
    """Seconds of the asset's selected animation (0 when it has none)."""
    from ..gltf import load_scene

    return load_scene(asset_path, animation).duration


def render_clip(asset_path, cameras: CameraTrajectory, renderer: str = "fast", **options) -> np.ndarray:
    """Render ``cameras`` of the asset at ``asset_path`` -> [N, H, W, 4] uint8 RGBA.

    Frame i is rendered with camera i at animation time ``cameras.frames[i].time`` (normalised:
    the selected animation's duration maps to [0, 1]). The object is normalised into the unit
    box by its bounds at t0 (``normalize="all"``: over the whole animation).

    Options (fast): ``animation`` ("longest" | "first" | index | name), ``normalize``, ``msaa``,
    ``max_extent``. Options (blender): ``blender`` (executable), ``engine``
    (workbench | cycles | eevee), ``samples``, ``animation``, ``normalize``, ``timeout``.
    """
    if renderer == "fast":
        r = AssetRenderer(asset_path, **options)
        try:
            return r.render(cameras)
        finally:
            r.close()
    if renderer == "blender":
        from .blender import render_clip_blender

        return render_clip_blender(asset_path, cameras, **options)
    raise ValueError(f"unknown renderer {renderer!r}; valid: {', '.join(RENDERERS)}")


__all__ = ["AssetRenderer", "Normalization", "RENDERERS", "load_asset_duration", "render_clip"]
