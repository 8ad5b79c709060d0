"""Triangle-mesh primitives with normals and texture coordinates.

Every primitive is centred at the origin, Y up, and fits the unit box (its largest extent
is 1). Surfaces of revolution (sphere, cylinder, cone, torus, capsule) come from one lathe
routine that sweeps a profile curve around the Y axis; the cube is six subdivided grids so
that skinning and morphing have interior vertices to move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ShapeName = Literal["cube", "sphere", "cylinder", "cone", "torus", "capsule"]
SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone", "torus", "capsule")

_SEGMENTS = 32  # angular steps of surfaces of revolution
_RINGS = 12  # profile steps of curved parts (half circles, straight sides)


@dataclass
class MeshData:
    """An indexed triangle mesh.

    Attributes:
        positions: float32 [N, 3] vertex positions.
        normals: float32 [N, 3] unit vertex normals.
        uvs: float32 [N, 2] texture coordinates (glTF convention, origin top-left).
        indices: uint32 [M, 3] counter-clockwise triangles (front faces outwards).
    """

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    indices: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.positions.shape[0])


def _finish(positions: np.ndarray, normals: np.ndarray, uvs: np.ndarray, tris: list) -> MeshData:
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    return MeshData(
        positions=np.ascontiguousarray(positions, dtype=np.float32),
        normals=np.ascontiguousarray(normals, dtype=np.float32),
        uvs=np.ascontiguousarray(uvs, dtype=np.float32),
        indices=np.asarray(tris, dtype=np.uint32).reshape(-1, 3),
    )


def lathe(profile: np.ndarray, segments: int = _SEGMENTS) -> MeshData:
    """Sweep a profile around the Y axis.

    Args:
        profile: [P, 4] rows (radius, y, normal_radial, normal_y), ordered so that the surface
            is walked from bottom to top with the outside on the viewer's side. Two consecutive
            rows at the same point (a crease) produce no triangles; rows with radius 0 are poles.
        segments: angular subdivisions.

    Returns:
        The mesh, with a duplicated seam column so that u runs from 0 to 1.
    """
    profile = np.asarray(profile, dtype=np.float64)
    theta = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    sin, cos = np.sin(theta), np.cos(theta)
    radius, height, n_r, n_y = profile.T
    steps = np.hypot(np.diff(radius), np.diff(height))
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    v = arc / max(arc[-1], 1e-9)

    positions = np.stack(
        [radius[:, None] * sin[None], np.broadcast_to(height[:, None], (len(profile), segments + 1)),
         radius[:, None] * cos[None]], axis=-1).reshape(-1, 3)
    normals = np.stack(
        [n_r[:, None] * sin[None], np.broadcast_to(n_y[:, None], (len(profile), segments + 1)),
         n_r[:, None] * cos[None]], axis=-1).reshape(-1, 3)
    uvs = np.stack(
        [np.broadcast_to(theta[None] / (2 * np.pi), (len(profile), segments + 1)),
         np.broadcast_to(1.0 - v[:, None], (len(profile), segments + 1))], axis=-1).reshape(-1, 2)

    tris = []
    width = segments + 1
    for i in range(len(profile) - 1):
        if steps[i] < 1e-9:
            continue  # crease: same point, different normals
        for j in range(segments):
            a, b = i * width + j, i * width + j + 1
            c, d = a + width, b + width
            if radius[i] > 1e-9:
                tris.append((a, b, d))
            if radius[i + 1] > 1e-9:
                tris.append((a, d, c))
    return _finish(positions, normals, uvs, tris)


def _line(p0: tuple, p1: tuple, normal: tuple, steps: int) -> list:
    """Profile rows on a straight segment, sharing one normal."""
    return [(p0[0] + (p1[0] - p0[0]) * s, p0[1] + (p1[1] - p0[1]) * s, *normal)
            for s in np.linspace(0.0, 1.0, steps + 1)]


def _arc(center_r: float, center_y: float, radius: float, phi0: float, phi1: float,
         steps: int) -> list:
    """Profile rows on a circular arc (angles from the radial direction towards +Y)."""
    phis = np.linspace(phi0, phi1, steps + 1)
    return [(center_r + radius * np.cos(p), center_y + radius * np.sin(p), np.cos(p), np.sin(p))
            for p in phis]


def sphere() -> MeshData:
    """Unit-diameter UV sphere."""
    return lathe(np.array(_arc(0.0, 0.0, 0.5, -np.pi / 2, np.pi / 2, 2 * _RINGS)))


def cylinder() -> MeshData:
    """Cylinder of diameter 1 and height 1 with flat caps."""
    rows = (_line((0.0, -0.5), (0.5, -0.5), (0.0, -1.0), 2)
            + _line((0.5, -0.5), (0.5, 0.5), (1.0, 0.0), _RINGS)
            + _line((0.5, 0.5), (0.0, 0.5), (0.0, 1.0), 2))
    return lathe(np.array(rows))


def cone() -> MeshData:
    """Cone of base diameter 1 and height 1, apex up."""
    slant = np.array([1.0, 0.5]) / np.hypot(1.0, 0.5)
    rows = (_line((0.0, -0.5), (0.5, -0.5), (0.0, -1.0), 2)
            + _line((0.5, -0.5), (0.0, 0.5), tuple(slant), _RINGS))
    return lathe(np.array(rows))


def capsule() -> MeshData:
    """Capsule of diameter 0.5 and total height 1."""
    rows = (_arc(0.0, -0.25, 0.25, -np.pi / 2, 0.0, _RINGS // 2)
            + _line((0.25, -0.25), (0.25, 0.25), (1.0, 0.0), _RINGS)[1:-1]
            + _arc(0.0, 0.25, 0.25, 0.0, np.pi / 2, _RINGS // 2))
    return lathe(np.array(rows))


def torus() -> MeshData:
    """Torus lying in the XZ plane, outer diameter 1, tube diameter 0.3."""
    return lathe(np.array(_arc(0.35, 0.0, 0.15, -np.pi, np.pi, 2 * _RINGS)), segments=_SEGMENTS)


def cube(subdivisions: int = 8) -> MeshData:
    """Unit cube, each face a (subdivisions x subdivisions) grid of quads."""
    faces = [  # (normal, u axis, v axis) with u x v = normal
        ((1, 0, 0), (0, 0, -1), (0, 1, 0)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
        ((0, 1, 0), (1, 0, 0), (0, 0, -1)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
    ]
    n = subdivisions
    s = np.linspace(0.0, 1.0, n + 1)
    su, sv = np.meshgrid(s, s, indexing="xy")  # [n+1, n+1], row = v, column = u
    positions, normals, uvs, tris = [], [], [], []
    for normal, u_axis, v_axis in faces:
        normal, u_axis, v_axis = (np.array(a, dtype=np.float64) for a in (normal, u_axis, v_axis))
        base = sum(len(p) for p in positions)
        p = 0.5 * normal + (su[..., None] - 0.5) * u_axis + (sv[..., None] - 0.5) * v_axis
        positions.append(p.reshape(-1, 3))
        normals.append(np.broadcast_to(normal, (p.shape[0] * p.shape[1], 3)))
        uvs.append(np.stack([su, 1.0 - sv], axis=-1).reshape(-1, 2))
        for r in range(n):
            for c in range(n):
                a = base + r * (n + 1) + c
                tris += [(a, a + 1, a + n + 2), (a, a + n + 2, a + n + 1)]
    return _finish(np.concatenate(positions), np.concatenate(normals), np.concatenate(uvs), tris)


_BUILDERS = {"cube": cube, "sphere": sphere, "cylinder": cylinder, "cone": cone,
             "torus": torus, "capsule": capsule}


def make_shape(name: str) -> MeshData:
    """Build a primitive by name (one of :data:`SHAPES`), fitting the unit box."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown shape {name!r}; valid shapes: {', '.join(SHAPES)}") from None


def transformed(mesh: MeshData, matrix: np.ndarray) -> MeshData:
    """Apply an affine 4x4 transform to positions (and its inverse transpose to normals)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    linear = matrix[:3, :3]
    positions = mesh.positions.astype(np.float64) @ linear.T + matrix[:3, 3]
    normals = mesh.normals.astype(np.float64) @ np.linalg.inv(linear)
    if np.linalg.det(linear) < 0:
        indices = mesh.indices[:, ::-1]
    else:
        indices = mesh.indices
    return _finish(positions, normals, mesh.uvs, indices)


def merged(meshes: list[MeshData]) -> MeshData:
    """Concatenate meshes into one (indices are offset)."""
    offsets = np.cumsum([0] + [m.num_vertices for m in meshes[:-1]])
    return MeshData(
        positions=np.concatenate([m.positions for m in meshes]),
        normals=np.concatenate([m.normals for m in meshes]),
        uvs=np.concatenate([m.uvs for m in meshes]),
        indices=np.concatenate([m.indices + np.uint32(o) for m, o in zip(meshes, offsets)]),
    )
