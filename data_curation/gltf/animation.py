"""glTF animation samplers: LINEAR (slerp for rotations), STEP and CUBICSPLINE.

Quaternions are glTF's ``[x, y, z, w]``. CUBICSPLINE follows the spec (Appendix C): each
keyframe stores (in-tangent, value, out-tangent) and the tangents are scaled by the keyframe
interval ``t_{k+1} - t_k``::

    p(s) = (2s^3 - 3s^2 + 1) v_k + (s^3 - 2s^2 + s) dt b_k + (-2s^3 + 3s^2) v_{k+1} + (s^3 - s^2) dt a_{k+1}

Times outside the keyframe range clamp to the first / last key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Literal

import numpy as np

from .errors import AssetError

Interpolation = Literal["LINEAR", "STEP", "CUBICSPLINE"]
Path_ = Literal["translation", "rotation", "scale", "weights"]


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions [..., 4] (xyzw), shortest arc."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def hermite(v0: np.ndarray, b0: np.ndarray, v1: np.ndarray, a1: np.ndarray, s: float, dt: float) -> np.ndarray:
    """Cubic Hermite spline between keys (value v, out-tangent b, in-tangent a), ``s`` in [0, 1]."""
    s2, s3 = s * s, s * s * s
    return (2 * s3 - 3 * s2 + 1) * v0 + (s3 - 2 * s2 + s) * dt * b0 + (-2 * s3 + 3 * s2) * v1 + (s3 - s2) * dt * a1


@dataclass
class Sampler:
    """Keyframes of one channel: ``times`` [K]; ``values`` [K, n] (``in_tangents``/``out_tangents`` for CUBICSPLINE)."""

    times: np.ndarray
    values: np.ndarray
    interpolation: str = "LINEAR"
    in_tangents: np.ndarray = None  # type: ignore[assignment]
    out_tangents: np.ndarray = None  # type: ignore[assignment]

    @classmethod
    def from_accessors(cls, times: np.ndarray, output: np.ndarray, interpolation: str, width: int, what: str) -> "Sampler":
        """Build from raw accessor data; ``width`` is the value size (3, 4, or the morph target count)."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if times.size == 0:
            raise AssetError("corrupt", f"{what}: sampler has no keyframes")
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
            raise AssetError("corrupt", f"{what}: keyframe times are not finite and increasing")
        interpolation = interpolation or "LINEAR"
        if interpolation not in ("LINEAR", "STEP", "CUBICSPLINE"):
            raise AssetError("unsupported", f"{what}: interpolation {interpolation!r}")
        flat = np.asarray(output, dtype=np.float64).reshape(-1)
        per_key = 3 * width if interpolation == "CUBICSPLINE" else width
        if width == 0 or flat.size != times.size * per_key:
            raise AssetError("corrupt", f"{what}: {flat.size} output values for {times.size} keys of width {width} ({interpolation})")
        if not np.all(np.isfinite(flat)):
            raise AssetError("non_finite", f"{what}: animation output holds NaN/Inf")
        if interpolation == "CUBICSPLINE":
            triples = flat.reshape(times.size, 3, width)
            return cls(times, triples[:, 1], interpolation, triples[:, 0], triples[:, 2])
        return cls(times, flat.reshape(times.size, width), interpolation)

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def evaluate(self, t: float, is_rotation: bool = False) -> np.ndarray:
        """Value [n] at time ``t`` seconds."""
        times = self.times
        if t <= times[0] or times.size == 1:
            out = self.values[0].copy()
        elif t >= times[-1]:
            out = self.values[-1].copy()
        else:
            k = int(np.searchsorted(times, t, side="right") - 1)
            dt = times[k + 1] - times[k]
            s = (t - times[k]) / dt if dt > 0 else 0.0
            if self.interpolation == "STEP":
                out = self.values[k].copy()
            elif self.interpolation == "CUBICSPLINE":
                out = hermite(self.values[k], self.out_tangents[k], self.values[k + 1], self.in_tangents[k + 1], s, dt)
            elif is_rotation:
                out = slerp(self.values[k], self.values[k + 1], s)
            else:
                out = (1.0 - s) * self.values[k] + s * self.values[k + 1]
        if is_rotation:
            norm = np.linalg.norm(out)
            out = out / norm if norm > 1e-12 else np.array([0.0, 0.0, 0.0, 1.0])
        return out


@dataclass
class Channel:
    node: int
    path: str  # translation | rotation | scale | weights
    sampler: Sampler


@dataclass
class Animation:
    name: str
    channels: List[Channel]

    @property
    def start(self) -> float:
        return min((c.sampler.start for c in self.channels), default=0.0)

    @property
    def end(self) -> float:
        return max((c.sampler.end for c in self.channels), default=0.0)

    @property
    def duration(self) -> float:
        return self.end - self.start
