"""The SSIM motion rule of Diffusion4D's curation (docs/method.md, rule 2).

From the front-view video (fixed camera, animation playing) take frames t0, t(T/4), t(T/2);
compute SSIM(t0, T/4) and SSIM(t0, T/2). Reject the asset when **both** are above
``s_high`` (too little motion), or when **either** falls below ``s_low`` (distortion or a
drastic change). SSIM is the project's one SSIM (:mod:`diffusion4d.metrics`: torchmetrics'
Gaussian window, 11 px, sigma 1.5, in float64) on RGB composited over white.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Decision = Literal["accept", "too_static", "too_drastic"]


@dataclass
class SSIMRuleResult:
    ssim_quarter: float  # SSIM(t0, t(T/4))
    ssim_half: float  # SSIM(t0, t(T/2))
    decision: Decision
    reason: str

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of images ``[N, C, H, W]`` in [0, 1] -> ``[N]`` (:func:`diffusion4d.metrics.ssim_per_frame`)."""
    from diffusion4d.metrics import ssim_per_frame

    return ssim_per_frame(a, b)


def ssim_motion_rule(front_frames: torch.Tensor, s_high: float = 0.95, s_low: float = 0.4) -> SSIMRuleResult:
    """Apply the rule to a front-view video ``[T, C, H, W]`` in [0, 1] (T >= 3)."""
    if front_frames.dim() != 4 or front_frames.shape[0] < 3:
        raise ValueError(f"need a [T>=3, C, H, W] front video, got shape {tuple(front_frames.shape)}")
    if not s_low < s_high:
        raise ValueError(f"s_low ({s_low}) must be below s_high ({s_high})")
    num_frames = front_frames.shape[0]
    first = front_frames[0:1].expand(2, -1, -1, -1)
    others = front_frames[[num_frames // 4, num_frames // 2]]
    s_quarter, s_half = (float(v) for v in ssim(first, others))
    if s_quarter > s_high and s_half > s_high:
        decision, reason = "too_static", f"SSIM(t0,T/4)={s_quarter:.3f} and SSIM(t0,T/2)={s_half:.3f} both > {s_high}"
    elif min(s_quarter, s_half) < s_low:
        decision, reason = "too_drastic", f"min(SSIM(t0,T/4)={s_quarter:.3f}, SSIM(t0,T/2)={s_half:.3f}) < {s_low}"
    else:
        decision, reason = "accept", f"SSIM(t0,T/4)={s_quarter:.3f}, SSIM(t0,T/2)={s_half:.3f} within [{s_low}, {s_high}]"
    return SSIMRuleResult(s_quarter, s_half, decision, reason)
