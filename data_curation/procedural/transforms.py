"""Small rigid-transform helpers (quaternions are glTF order: x, y, z, w)."""

from __future__ import annotations

import numpy as np

AXES: dict[str, tuple[float, float, float]] = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0),
                                               "z": (0.0, 0.0, 1.0)}


def quat_axis_angle(axis: np.ndarray | tuple, angle: float) -> np.ndarray:
    """Unit quaternion [4] (x, y, z, w) rotating by ``angle`` radians about ``axis``."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([axis * np.sin(angle / 2.0), [np.cos(angle / 2.0)]])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix of a quaternion [4] (normalised first)."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def trs_matrix(translation=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0, 1.0),
               scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    """4x4 matrix T * R * S, the glTF node transform."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(np.asarray(rotation)) * np.asarray(scale, dtype=np.float64)[None]
    m[:3, 3] = translation
    return m
