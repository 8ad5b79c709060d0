"""Rigid-transform maths of the curation stage, one implementation for the glTF evaluator and the
procedural asset generator (quaternions in glTF order: x, y, z, w)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

AXES: dict[str, tuple[float, float, float]] = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0),
                                               "z": (0.0, 0.0, 1.0)}


def quat_axis_angle(axis: np.ndarray | tuple, angle: float) -> np.ndarray:
    """Unit quaternion [4] (x, y, z, w) rotating by ``angle`` radians about ``axis``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([axis * np.sin(angle / 2.0), [np.cos(angle / 2.0)]])


def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Quaternion [x, y, z, w] (any non-zero norm; normalised implicitly) -> rotation [3, 3]; a zero quaternion gives the identity."""
    x, y, z, w = (float(v) for v in q)
    n = x * x + y * y + z * z + w * w
    s = 2.0 / n if n > 0 else 0.0
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ])


def trs_matrix(t: Sequence[float] = (0.0, 0.0, 0.0), r: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
               s: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """The glTF node transform T @ R @ S as [4, 4]."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(r) * np.asarray(s, dtype=np.float64)[None, :]
    m[:3, 3] = t
    return m
