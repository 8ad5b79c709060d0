"""Multi-part compositions: several meshes in a node hierarchy, each part moving differently."""

from __future__ import annotations

import numpy as np

from .geometry import merged
from .glb_writer import GlbBuilder
from .keyframes import sample_track
from .spec import AssetSpec, MotionFamily, accent_material, body_material, loop_phase, sized_shape
from ..transforms import AXES, quat_axis_angle


class MultipartFamily(MotionFamily):
    """A body with a moon orbiting it, a pendulum swinging from it, or a propeller spinning on it.

    The second part uses ``spec.colour2``; parts hang off animated parents so their motions
    compose through the hierarchy.
    """

    name = "multipart"

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        amp = spec.motion_amplitude
        spec.variant = str(rng.choice(["orbit", "pendulum", "propeller"]))
        if spec.variant == "orbit":
            spec.params = {"orbit_radius": 0.38 + 0.12 * amp, "orbit_turns": 1 if amp < 0.5 else 2,
                           "tilt_deg": float(rng.uniform(0.0, 25.0)), "body_turns": 1}
        elif spec.variant == "pendulum":
            spec.params = {"swing_deg": 15.0 + 35.0 * amp, "body_rock_deg": 5.0 + 15.0 * amp,
                           "cycles": int(rng.integers(1, 3))}
        else:
            spec.params = {"spin_turns": 1 + int(round(2 * amp)), "hover": 0.03 + 0.1 * amp,
                           "blades": int(rng.integers(2, 5))}

    def phrase(self, spec: AssetSpec) -> str:
        return {"orbit": f"with a small {spec.colour2} sphere orbiting it",
                "pendulum": f"with a swinging {spec.colour2} pendulum",
                "propeller": f"with a spinning {spec.colour2} propeller"}[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        return getattr(self, f"_{spec.variant}")(builder, spec)

    def _track(self, spec: AssetSpec, node: int, path: str, fn):
        return sample_track(node, path, fn, spec.duration_s, spec.interpolation)

    def _orbit(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        group = builder.add_node("group")
        body_mesh = builder.add_mesh(spec.shape, sized_shape(spec.shape, 0.55), body_material(builder, spec))
        body = builder.add_node(spec.shape, mesh=body_mesh, parent=group, rotation=(0, 0, 0, 1))
        tilt = builder.add_node("orbit_plane", parent=group,
                                rotation=quat_axis_angle(AXES["z"], np.radians(p["tilt_deg"])))
        pivot = builder.add_node("orbit_pivot", parent=tilt, rotation=(0, 0, 0, 1))
        moon_mesh = builder.add_mesh("sphere", sized_shape("sphere", 0.18), accent_material(builder, spec))
        builder.add_node("moon", mesh=moon_mesh, parent=pivot, translation=(p["orbit_radius"], 0, 0))
        y = AXES["y"]
        tracks = [
            self._track(spec, body, "rotation",
                        lambda t: quat_axis_angle(y, loop_phase(t, spec, p["body_turns"]))),
            self._track(spec, pivot, "rotation",
                        lambda t: quat_axis_angle(y, -loop_phase(t, spec, p["orbit_turns"]))),
        ]
        builder.add_animation("orbit", tracks)
        return [group]

    def _pendulum(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        body_mesh = builder.add_mesh(spec.shape, sized_shape(spec.shape, 0.5), body_material(builder, spec))
        body = builder.add_node(spec.shape, mesh=body_mesh, rotation=(0, 0, 0, 1))
        pivot = builder.add_node("pendulum_pivot", parent=body, translation=(0.0, 0.3, 0.38),
                                 rotation=(0, 0, 0, 1))
        pendulum = merged([sized_shape("cylinder", (0.03, 0.45, 0.03), offset=(0.0, -0.225, 0.0)),
                           sized_shape("sphere", 0.18, offset=(0.0, -0.45, 0.0))])
        pendulum_mesh = builder.add_mesh("pendulum", pendulum, accent_material(builder, spec))
        builder.add_node("pendulum", mesh=pendulum_mesh, parent=pivot)
        swing, rock = np.radians(p["swing_deg"]), np.radians(p["body_rock_deg"])
        tracks = [
            self._track(spec, body, "rotation", lambda t: quat_axis_angle(
                AXES["y"], rock * np.sin(loop_phase(t, spec, 1)))),
            self._track(spec, pivot, "rotation", lambda t: quat_axis_angle(
                AXES["z"], swing * np.sin(loop_phase(t, spec, p["cycles"])))),
        ]
        builder.add_animation("pendulum", tracks)
        return [body]

    def _propeller(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        body_mesh = builder.add_mesh(spec.shape, sized_shape(spec.shape, 0.55), body_material(builder, spec))
        body = builder.add_node(spec.shape, mesh=body_mesh, translation=(0.0, 0.0, 0.0))
        hub = builder.add_node("hub", parent=body, translation=(0.0, 0.0, 0.33), rotation=(0, 0, 0, 1))
        accent = accent_material(builder, spec)
        hub_mesh = builder.add_mesh("hub", sized_shape("sphere", 0.08), accent)
        builder.add_node("hub_cap", mesh=hub_mesh, parent=hub)
        blade_mesh = builder.add_mesh("blade", sized_shape("cube", (0.07, 0.28, 0.02), offset=(0, 0.17, 0)),
                                      accent)
        for i in range(p["blades"]):
            builder.add_node(f"blade_{i}", mesh=blade_mesh, parent=hub,
                             rotation=quat_axis_angle(AXES["z"], 2 * np.pi * i / p["blades"]))
        tracks = [
            self._track(spec, body, "translation", lambda t: np.array(
                [0.0, p["hover"] * np.sin(loop_phase(t, spec, 1)), 0.0])),
            self._track(spec, hub, "rotation", lambda t: quat_axis_angle(
                AXES["z"], loop_phase(t, spec, p["spin_turns"]))),
        ]
        builder.add_animation("propeller", tracks)
        return [body]
