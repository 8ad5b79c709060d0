"""Articulated motion: one skinned mesh (JOINTS_0 / WEIGHTS_0) driven by animated joint rotations."""

from __future__ import annotations

import numpy as np

from .geometry import MeshData, merged, transformed
from .glb_writer import GlbBuilder
from .keyframes import sample_track
from .spec import AssetSpec, MotionFamily, body_material, loop_phase, sized_shape
from ..transforms import AXES, quat_axis_angle

BENDABLE_SHAPES = ("cube", "cylinder", "cone", "capsule")
_BODY = 0.5  # body size of the arm / wings variants
_SHOULDER_X, _SHOULDER_Y = 0.2, 0.05
_ARM_LENGTH, _ARM_THICKNESS = 0.45, 0.12
_COLUMN_HEIGHT, _COLUMN_WIDTH = 0.8, 0.45


def chain_weights(u: np.ndarray, joints: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Skin weights along a chain of bones.

    Args:
        u: [N] position along the chain in bone lengths (0 at the first joint).
        joints: skin-joint indices of the chain, one per bone.

    Returns:
        JOINTS_0 uint8 [N, 4] and WEIGHTS_0 float32 [N, 4]: each vertex blends linearly
        between the two bones whose midpoints surround it; unused slots are (0, 0.0).
    """
    n = len(joints)
    s = np.clip(np.asarray(u, dtype=np.float64) - 0.5, 0.0, n - 1.0)
    k = np.minimum(np.floor(s).astype(int), max(n - 2, 0))
    frac = (s - k).astype(np.float32) if n > 1 else np.zeros(len(s), np.float32)
    table = np.asarray(joints)
    out_j = np.zeros((len(s), 4), np.uint8)
    out_w = np.zeros((len(s), 4), np.float32)
    out_j[:, 0] = table[k]
    out_w[:, 0] = np.float32(1.0) - frac
    blended = frac > 0
    out_j[blended, 1] = table[np.minimum(k + 1, n - 1)][blended]
    out_w[blended, 1] = frac[blended]
    moved = out_w[:, 0] == 0  # fully on the next bone: keep the used slot first
    out_j[moved, 0], out_w[moved, 0] = out_j[moved, 1], out_w[moved, 1]
    out_j[moved, 1], out_w[moved, 1] = 0, 0.0
    return out_j, out_w


def _arm_mesh(side: int) -> MeshData:
    """A capsule arm along +x (side=1) or -x (side=-1) starting at the shoulder."""
    arm = sized_shape("capsule", (2 * _ARM_THICKNESS, _ARM_LENGTH, 2 * _ARM_THICKNESS))
    m = np.zeros((4, 4))
    m[:3, :3] = [[0, side, 0], [-side, 0, 0], [0, 0, 1]]  # y axis -> side * x axis
    m[:, 3] = [side * (_SHOULDER_X + _ARM_LENGTH / 2), _SHOULDER_Y, 0.0, 1.0]
    return transformed(arm, m)


class ArticulatedFamily(MotionFamily):
    """A body with a swinging arm, two flapping wings, or a column bending side to side."""

    name = "articulated"

    def sample(self, rng: np.random.Generator, spec: AssetSpec) -> None:
        amp = spec.motion_amplitude
        variants = ["arm", "wings"] + (["bend"] if spec.shape in BENDABLE_SHAPES else [])
        spec.variant = str(rng.choice(variants))
        if spec.variant == "bend":
            spec.params = {"bend_deg": 8.0 + 22.0 * amp}
        else:
            spec.params = {"swing_deg": 20.0 + 50.0 * amp}
        spec.params["cycles"] = int(rng.integers(1, 3))

    def phrase(self, spec: AssetSpec) -> str:
        return {"arm": "with a swinging arm", "wings": "flapping two wings",
                "bend": "bending side to side"}[spec.variant]

    def build(self, builder: GlbBuilder, spec: AssetSpec) -> list[int]:
        p = spec.params
        if spec.variant == "bend":
            mesh, chains, root_pos = self._column(spec)
        else:
            mesh, chains, root_pos = self._limbs(spec)
        root = builder.add_node("root_joint", translation=root_pos)
        joint_nodes, world = [root], [np.asarray(root_pos, dtype=np.float64)]
        tracks = []
        max_angle = np.radians(p.get("bend_deg", p.get("swing_deg", 0.0)))
        for side, offsets in chains:
            parent, parent_world = root, world[0]
            for depth, offset in enumerate(offsets):
                node = builder.add_node(f"joint_{len(joint_nodes)}", parent=parent,
                                        translation=offset, rotation=(0.0, 0.0, 0.0, 1.0))
                joint_nodes.append(node)
                parent_world = parent_world + np.asarray(offset)
                world.append(parent_world)
                gain = 1.0 if depth == 0 else 0.6  # outer bones follow with less swing and a lag

                def rotation(t, side=side, gain=gain, lag=0.8 * depth):
                    angle = side * gain * max_angle * np.sin(loop_phase(t, spec, p["cycles"]) - lag)
                    return quat_axis_angle(AXES["z"], angle)

                tracks.append(sample_track(node, "rotation", rotation, spec.duration_s,
                                           spec.interpolation))
                parent = node
        inverse_bind = np.stack([np.eye(4) for _ in world])
        inverse_bind[:, :3, 3] = -np.stack(world)  # joints are unrotated at bind time
        skin = builder.add_skin(joint_nodes, inverse_bind, skeleton=root)
        mesh_data, joints, weights = mesh
        mesh_index = builder.add_mesh(spec.shape, mesh_data, body_material(builder, spec),
                                      joints=joints, weights=weights)
        skinned = builder.add_node("skinned_mesh", mesh=mesh_index, skin=skin)
        builder.add_animation(spec.variant, tracks)
        return [skinned, root]

    @staticmethod
    def _limbs(spec: AssetSpec):
        """Body bound to the root joint plus one or two two-bone arms."""
        sides = [1] if spec.variant == "arm" else [1, -1]
        body = sized_shape(spec.shape, _BODY)
        parts = [body]
        joints = [np.zeros((body.num_vertices, 4), np.uint8)]
        weights = [np.tile(np.float32([1, 0, 0, 0]), (body.num_vertices, 1))]
        chains = []
        for i, side in enumerate(sides):
            arm = _arm_mesh(side)
            bone = _ARM_LENGTH / 2
            u = (side * arm.positions[:, 0] - _SHOULDER_X) / bone
            j, w = chain_weights(u, [1 + 2 * i, 2 + 2 * i])
            parts.append(arm), joints.append(j), weights.append(w)
            chains.append((side, [(side * _SHOULDER_X, _SHOULDER_Y, 0.0), (side * bone, 0.0, 0.0)]))
        mesh = (merged(parts), np.concatenate(joints), np.concatenate(weights))
        return mesh, chains, (0.0, 0.0, 0.0)

    @staticmethod
    def _column(spec: AssetSpec):
        """A tall body bound to a three-bone chain rising from its base."""
        body = sized_shape(spec.shape, (_COLUMN_WIDTH, _COLUMN_HEIGHT, _COLUMN_WIDTH))
        bone = _COLUMN_HEIGHT / 3
        u = (body.positions[:, 1] + _COLUMN_HEIGHT / 2) / bone
        joints, weights = chain_weights(u, [0, 1, 2])
        chains = [(1, [(0.0, bone, 0.0), (0.0, bone, 0.0)])]
        return (body, joints, weights), chains, (0.0, -_COLUMN_HEIGHT / 2, 0.0)
