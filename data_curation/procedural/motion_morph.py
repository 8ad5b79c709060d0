"""Morph-target deformation: POSITION delta targets blended by an animated ``weights`` channel."""

from __future__ import annotations

import numpy as np

from .geometry import transformed
from .glb_writer import GlbBuilder
from .keyframes import sample_track
from .spec import AssetSpec, MotionFamily, body_material, loop_phase, sized_shape
from ..transforms import AXES, quat_axis_angle, quat_to_matrix

_SIZE = 0.8


def _radial(p: np.ndarray, horizontal: bool = False) -> np.ndarray:
    """Unit directions from the centre (or the Y axis); positions only, so seams never crack."""
    d = p.copy()
    if horizontal:
        d[:, 1] = 0.0
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return np.where(n > 1e-6, d / np.maximum(n, 1e-6), 0.0)


def morph_deltas(kind: str, positions: np.ndarray) -> np.ndarray:
    """POSITION deltas [N, 3] of one morph target for positions [N, 3] of a body of height 0.8.

    Kinds: "wobble" (lobed radial ripple), "twist" (top turned 70 degrees about Y, base fixed),
    "bulge" (middle pushed out horizontally), "ripple" (small high-frequency radial ripple).
    """
    p = positions.astype(np.float64)
    y = p[:, 1] / _SIZE  # about -0.5 .. 0.5
    azimuth = np.arctan2(p[:, 0], p[:, 2])
    if kind == "wobble":
        return _radial(p) * (0.1 * np.sin(3.0 * azimuth + 6.0 * y))[:, None]
    if kind == "twist":
        angle = np.radians(70.0) * (y + 0.5)
        cos, sin = np.cos(angle), np.sin(angle)
        x = cos * p[:, 0] + sin * p[:, 2]
        z = -sin * p[:, 0] + cos * p[:, 2]
        return np.stack([x, p[:, 1], z], axis=1) - p
    if kind == "bulge":
        return _radial(p, horizontal=True) * (0.14 * np.cos(np.pi * y))[:, None]
    if kind == "ripple":
        return _radial(p) * (0.04 * np.sin(8.0 * azimuth) * np.cos(10.0 * y))[:, None]
    raise ValueError(f"unknown morph target {kind!r}")


class MorphFamily(MotionFamily):
    """A body wobbling, twisting or bulging through two morph targets."""

    name = "morph"
    _PHRASES = {"wobble": "wobbling", "twist": "twisting", "bulge": "bulging"}

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        spec.variant = str(rng.choice(list(self._PHRASES)))
        spec.params = {"targets": [spec.variant, "ripple"], "peak_weight": 0.3 + 0.7 * spec.motion_amplitude,
                       "cycles": int(rng.integers(1, 3)), "size": _SIZE,
                       "tilt_deg": float(rng.uniform(-20.0, 20.0))}

    def phrase(self, spec: AssetSpec) -> str:
        return self._PHRASES[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        # tilt the body slightly (baked into the vertices) so twists of symmetric shapes show
        tilt = np.eye(4)
        tilt[:3, :3] = quat_to_matrix(quat_axis_angle(AXES["x"], np.radians(p["tilt_deg"])))
        body = sized_shape(spec.shape, p["size"])
        targets = [(morph_deltas(kind, body.positions) @ tilt[:3, :3].T) for kind in p["targets"]]
        body = transformed(body, tilt)
        mesh = builder.add_mesh(spec.shape, body, body_material(builder, spec), targets=targets)
        node = builder.add_node(spec.shape, mesh=mesh)

        def weights(t: float) -> np.ndarray:
            phase = loop_phase(t, spec, p["cycles"])
            w = p["peak_weight"]
            return np.array([w * 0.5 * (1.0 - np.cos(phase)), 0.6 * w * 0.5 * (1.0 - np.cos(2 * phase))])

        track = sample_track(node, "weights", weights, spec.duration_s, spec.interpolation)
        builder.add_animation(spec.variant, [track])
        return [node]
