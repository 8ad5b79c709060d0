"""Single-node motion families: rigid rotation, translation, non-uniform scaling, static."""

from __future__ import annotations

import numpy as np

from .glb_writer import GlbBuilder
from .keyframes import sample_track
from .spec import AssetSpec, MotionFamily, body_material, loop_phase, sized_shape
from ..transforms import AXES, quat_axis_angle


def _single_body(builder: GlbBuilder, spec: AssetSpec, size: float, **trs) -> int:
    mesh = builder.add_mesh(spec.shape, sized_shape(spec.shape, size), body_material(builder, spec))
    return builder.add_node(spec.shape, mesh=mesh, **trs)


class RotationFamily(MotionFamily):
    """Spin about an axis (whole turns), tumble about a horizontal axis, or rock back and forth."""

    name = "rotation"
    _PHRASES = {"spin": "spinning", "tumble": "tumbling", "rock": "rocking back and forth"}

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        amp = spec.motion_amplitude
        spec.variant = str(rng.choice(list(self._PHRASES)))
        if spec.variant == "spin":
            spec.params = {"axis": "y", "turns": 1 if amp < 0.6 else 2}
        elif spec.variant == "tumble":
            spec.params = {"axis": str(rng.choice(["x", "z"])), "turns": 1}
        else:
            spec.params = {"axis": str(rng.choice(["y", "z"])), "angle_deg": 15.0 + 45.0 * amp,
                           "cycles": int(rng.integers(1, 3))}
        spec.params["size"] = 0.8  # half-diagonal 0.69 < 0.75 in any orientation

    def phrase(self, spec: AssetSpec) -> str:
        return self._PHRASES[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        node = _single_body(builder, spec, p["size"])
        axis = AXES[p["axis"]]
        if "turns" in p:
            def angle(t: float) -> float:
                return loop_phase(t, spec, p["turns"])
        else:
            def angle(t: float) -> float:
                return np.radians(p["angle_deg"]) * np.sin(loop_phase(t, spec, p["cycles"]))
        track = sample_track(node, "rotation", lambda t: quat_axis_angle(axis, angle(t)),
                             spec.duration_s, spec.interpolation)
        builder.add_animation(spec.variant, [track])
        return [node]


class TranslationFamily(MotionFamily):
    """Bounce (parabolic hops), slide side to side, or move around a vertical circle."""

    name = "translation"
    _PHRASES = {"bounce": "bouncing", "slide": "sliding side to side",
                "circle": "moving in a circle"}
    # Curation normalises by the bounds at t0, so travel is measured in units of the t0 size:
    # 0.7 wide with at most ~0.17 of travel stays inside the camera's view after normalisation.
    _SIZE = 0.7

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        amp = spec.motion_amplitude
        spec.variant = str(rng.choice(list(self._PHRASES)))
        cycles = int(rng.integers(1, 3))
        if spec.variant == "bounce":
            spec.params = {"height": 0.05 + 0.12 * amp, "cycles": cycles}
        elif spec.variant == "slide":
            spec.params = {"distance": 0.05 + 0.12 * amp, "cycles": cycles}
        else:
            spec.params = {"radius": 0.03 + 0.07 * amp, "cycles": 1}
        spec.params["size"] = self._SIZE

    def phrase(self, spec: AssetSpec) -> str:
        return self._PHRASES[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        node = _single_body(builder, spec, p["size"], translation=(0.0, 0.0, 0.0))

        def offset(t: float) -> np.ndarray:
            phase = loop_phase(t, spec, p["cycles"])
            if spec.variant == "bounce":  # t0 on the floor, apex at `height`
                u = (phase / (2.0 * np.pi)) % 1.0
                return np.array([0.0, 4.0 * p["height"] * u * (1.0 - u), 0.0])
            if spec.variant == "slide":
                return np.array([p["distance"] * np.sin(phase), 0.0, 0.0])
            r = p["radius"]
            return np.array([r * np.sin(phase), r * (1.0 - np.cos(phase)), 0.0])

        track = sample_track(node, "translation", offset, spec.duration_s, spec.interpolation)
        builder.add_animation(spec.variant, [track])
        return [node]


class ScalingFamily(MotionFamily):
    """Pulse (uniform scale oscillation) or squash-and-stretch (volume-preserving, non-uniform)."""

    name = "scaling"
    _PHRASES = {"pulse": "pulsing", "squash": "squashing and stretching"}

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        amp = spec.motion_amplitude
        spec.variant = str(rng.choice(list(self._PHRASES)))
        spec.params = {"strength": 0.06 + (0.16 if spec.variant == "pulse" else 0.2) * amp,
                       "cycles": int(rng.integers(1, 3)), "size": 0.8}

    def phrase(self, spec: AssetSpec) -> str:
        return self._PHRASES[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        node = _single_body(builder, spec, p["size"], scale=(1.0, 1.0, 1.0))

        def scale(t: float) -> np.ndarray:
            s = 1.0 + p["strength"] * np.sin(loop_phase(t, spec, p["cycles"]))
            if spec.variant == "pulse":
                return np.array([s, s, s])
            side = 1.0 / np.sqrt(s)
            return np.array([side, s, side])

        track = sample_track(node, "scale", scale, spec.duration_s, spec.interpolation)
        builder.add_animation(spec.variant, [track])
        return [node]


class StaticFamily(MotionFamily):
    """No animation at all: the negative case for motion-based curation."""

    name = "static"

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        spec.variant = "static"
        spec.params = {"size": 1.0, "yaw_deg": float(rng.uniform(0.0, 90.0))}

    def phrase(self, spec: AssetSpec) -> str:
        return "that is static"

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        yaw = quat_axis_angle(AXES["y"], np.radians(spec.params["yaw_deg"]))
        return [_single_body(builder, spec, spec.params["size"], rotation=yaw)]
