"""Sampling analytic motions into glTF animation samplers.

A motion is a periodic function of time returning the animated property (translation [3],
rotation quaternion [4], scale [3] or morph weights [K]). It is sampled on keyframes spread
over one loop; CUBICSPLINE samplers get one-sided derivatives as in/out tangents, so a kink
(a bounce hitting the floor) keeps different slopes on each side of its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

Interpolation = Literal["LINEAR", "STEP", "CUBICSPLINE"]
INTERPOLATIONS: tuple[str, ...] = ("LINEAR", "CUBICSPLINE", "STEP")
TargetPath = Literal["translation", "rotation", "scale", "weights"]

# keyframe intervals per loop: STEP needs many to look like motion, cubic needs few
_INTERVALS = {"LINEAR": 24, "STEP": 24, "CUBICSPLINE": 12}
_FD_STEP = 1e-4  # seconds, for one-sided finite-difference tangents


@dataclass
class Track:
    """One animation channel with its sampler.

    Attributes:
        node: index of the target node.
        path: animated property.
        interpolation: glTF sampler interpolation.
        times: float32 [K] strictly increasing key times in seconds, starting at 0.
        values: float32 [K, C] key values (C = 3, 4 or the number of morph targets).
        in_tangents: float32 [K, C] (CUBICSPLINE only, else None).
        out_tangents: float32 [K, C] (CUBICSPLINE only, else None).
    """

    node: int
    path: str
    interpolation: str
    times: np.ndarray
    values: np.ndarray
    in_tangents: np.ndarray | None = None
    out_tangents: np.ndarray | None = None

    def sampler_output(self) -> np.ndarray:
        """Flattened sampler output rows: values, or (in, value, out) triplets per key."""
        if self.interpolation != "CUBICSPLINE":
            return self.values
        triplets = np.stack([self.in_tangents, self.values, self.out_tangents], axis=1)
        return triplets.reshape(-1, self.values.shape[1])


def sample_track(node: int, path: str, motion: Callable[[float], np.ndarray], duration: float,
                 interpolation: str) -> Track:
    """Sample ``motion`` (periodic with period ``duration``) into a :class:`Track`.

    Args:
        node: target node index.
        path: "translation" | "rotation" | "scale" | "weights".
        motion: t (seconds) -> property value [C]; must satisfy motion(0) == motion(duration).
        duration: loop length in seconds.
        interpolation: one of :data:`INTERPOLATIONS`.
    """
    if interpolation not in _INTERVALS:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {INTERPOLATIONS}")
    times = np.linspace(0.0, duration, _INTERVALS[interpolation] + 1)
    values = np.stack([np.asarray(motion(t), dtype=np.float64) for t in times])
    if path == "rotation":
        values /= np.linalg.norm(values, axis=1, keepdims=True)
    track = Track(node, path, interpolation, times.astype(np.float32), values.astype(np.float32))
    if interpolation == "CUBICSPLINE":
        h = _FD_STEP
        track.in_tangents = np.stack(
            [(np.asarray(motion(t)) - np.asarray(motion(t - h))) / h for t in times]).astype(np.float32)
        track.out_tangents = np.stack(
            [(np.asarray(motion(t + h)) - np.asarray(motion(t))) / h for t in times]).astype(np.float32)
    return track
