"""3D-to-4D motion magnitude (Diffusion4D, Eq. 1) and its latent form (Eq. 2).

Eq. 1 on pixels::

    m(V) = 1/T * sum_i || I_i - Ibar_i ||_2^2

with ``I_i`` frame i of the dynamic orbit and ``Ibar_i`` the static (frozen-time) orbit seen
from the same camera. Eq. 2 uses the same quantity on latents: ``m(z) = 1/T || z - zbar ||^2``.

``reduction="sum"`` is the paper's formula literally (it grows with resolution and channel
count); ``reduction="mean"`` divides by the number of elements per frame (C*H*W), which makes
it independent of resolution: for images in [0, 1] it lies in [0, 1]. Curation records the
``mean`` form in manifests and uses it as the conditioning value.
"""

from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["mean", "sum"]


def _check(x: torch.Tensor, x_static: torch.Tensor) -> None:
    if x.shape != x_static.shape:
        raise ValueError(f"dynamic and static shapes differ: {tuple(x.shape)} vs {tuple(x_static.shape)}")


def motion_magnitude(
    frames: torch.Tensor, static_frames: torch.Tensor, frame_dim: int = -4, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Motion magnitude over any leading batch shape.

    Args:
        frames: dynamic orbit, e.g. ``[B, T, C, H, W]`` (``frame_dim=-4``, the default) or
            latents ``[B, C, T, h, w]`` (``frame_dim=-3``).
        static_frames: the static orbit, same shape.
        frame_dim: the time axis.
        reduction: ``"sum"`` (Eq. 1 literally) or ``"mean"`` (per-element, resolution independent).

    Returns:
        ``[...]``: the input shape without the time axis and the three per-frame axes
        (``[B]`` for the examples above).
    """
    _check(frames, static_frames)
    if frames.dim() < 4:
        raise ValueError(f"expected at least 4 dims (T plus C, H, W), got shape {tuple(frames.shape)}")
    diff = frames - static_frames
    if diff.dtype != torch.float64:  # float64 stays float64 (gradient checks); everything else -> float32
        diff = diff.float()
    diff = diff.movedim(frame_dim, -4)  # [..., T, C, H, W]
    per_frame = diff.pow(2).flatten(-3).sum(-1)  # [..., T]
    if reduction == "mean":
        per_frame = per_frame / (diff.shape[-3] * diff.shape[-2] * diff.shape[-1])
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return per_frame.mean(-1)


def pixel_motion_magnitude(frames: torch.Tensor, static_frames: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Eq. 1 on images ``[B, T, C, H, W]`` (or ``[T, C, H, W]``) in [0, 1] -> ``[B]`` (or scalar)."""
    return motion_magnitude(frames, static_frames, frame_dim=-4, reduction=reduction)


def latent_motion_magnitude(latents: torch.Tensor, static_latents: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Eq. 2's ``m(z)`` on video latents in diffusers layout ``[B, C, T, h, w]`` -> ``[B]``."""
    return motion_magnitude(latents, static_latents, frame_dim=-3, reduction=reduction)


def motion_magnitude_reference(frames: torch.Tensor, static_frames: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Slow, obvious loop form of :func:`pixel_motion_magnitude` for ``[B, T, C, H, W]`` (tests only)."""
    _check(frames, static_frames)
    batch, num_frames = frames.shape[:2]
    out = torch.zeros(batch, dtype=torch.float32)
    for b in range(batch):
        total = 0.0
        for i in range(num_frames):
            d = (frames[b, i].double() - static_frames[b, i].double()).flatten()
            sq = float(sum(float(v) ** 2 for v in d))
            total += sq / d.numel() if reduction == "mean" else sq
        out[b] = total / num_frames
    return out
