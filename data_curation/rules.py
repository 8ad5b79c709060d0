"""Curation rules: each returns a :class:`RuleResult` (passed, rule name, reason text).

Rules, in the order curation applies them (the first failing one decides):

1. ``no_animation``: the asset has no animation (or one of zero duration);
2. ``empty_render``: the object covers at most ``min_coverage`` of the pixels in every frame
   of the first dynamic orbit (alpha all zero by default);
3. ``out_of_frame``: in some frame of a dynamic / front / four-view clip an alpha value above
   ``border_alpha`` lies within ``border_px`` pixels of the image border;
4. ``ssim``: Diffusion4D's SSIM rule on the front video (:func:`diffusion4d.ssim_rule.ssim_motion_rule`);
5. ``motion_range``: the motion magnitude of orbit 0 (Eq. 1, mean form, RGB over white) lies
   outside ``[min_motion, max_motion]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class RuleResult:
    passed: bool
    rule: str
    reason: str
    value: Optional[float] = None


def no_animation_rule(has_animation: bool, duration: float) -> RuleResult:
    if has_animation:
        return RuleResult(True, "no_animation", f"animation of {duration:.3f} s")
    return RuleResult(False, "no_animation", "no_animation: the asset has no animation (or it lasts 0 s)")


def coverage(frames: np.ndarray) -> np.ndarray:
    """Fraction of pixels with alpha > 0 per frame: [N, H, W, 4] uint8 -> [N]."""
    return (frames[..., 3] > 0).mean(axis=(1, 2))


def empty_render_rule(frames: np.ndarray, min_coverage: float = 0.0) -> RuleResult:
    """Reject when every frame covers at most ``min_coverage`` of the image."""
    cov = float(coverage(frames).max())
    if cov <= min_coverage:
        return RuleResult(False, "empty_render", f"empty_render: max object coverage {cov:.4f} <= {min_coverage}", cov)
    return RuleResult(True, "empty_render", f"max coverage {cov:.4f}", cov)


def border_touch(frames: np.ndarray, border_px: int = 1, border_alpha: int = 0) -> np.ndarray:
    """[N] bool: does frame i have alpha > ``border_alpha`` within ``border_px`` of the border?"""
    a = frames[..., 3] > border_alpha
    b = max(1, int(border_px))
    return a[:, :b].any((1, 2)) | a[:, -b:].any((1, 2)) | a[:, :, :b].any((1, 2)) | a[:, :, -b:].any((1, 2))


def out_of_frame_rule(clips: dict, border_px: int = 1, border_alpha: int = 0) -> RuleResult:
    """``clips``: {name: [N, H, W, 4] uint8}. Fails on the first clip with a frame touching the border."""
    for name, frames in clips.items():
        touch = border_touch(frames, border_px, border_alpha)
        if touch.any():
            first = int(np.argmax(touch))
            return RuleResult(False, "out_of_frame",
                              f"out_of_frame: {name} frame {first} ({int(touch.sum())} of {len(touch)} frames) has alpha > {border_alpha} within {border_px} px of the border")
    return RuleResult(True, "out_of_frame", "inside the frame")


def ssim_rule(front: np.ndarray, s_high: float = 0.95, s_low: float = 0.4):
    """Apply the SSIM rule to a front video [T, H, W, 4] uint8 -> (RuleResult, ssim_quarter, ssim_half)."""
    import torch

    from diffusion4d.io import frames_to_float
    from diffusion4d.ssim_rule import ssim_motion_rule

    x = torch.from_numpy(frames_to_float(front)).permute(0, 3, 1, 2)
    res = ssim_motion_rule(x, s_high=s_high, s_low=s_low)
    reason = res.reason if res.accepted else f"ssim_{res.decision}: {res.reason}"
    return RuleResult(res.accepted, "ssim", reason), res.ssim_quarter, res.ssim_half


def motion_magnitude(dynamic: np.ndarray, static: np.ndarray) -> float:
    """Eq. 1 (mean form) of a dynamic orbit vs its static orbit, both [T, H, W, 4] uint8, RGB over white."""
    import torch

    from diffusion4d.io import frames_to_float
    from diffusion4d.motion import pixel_motion_magnitude

    d = torch.from_numpy(frames_to_float(dynamic)).permute(0, 3, 1, 2)
    s = torch.from_numpy(frames_to_float(static)).permute(0, 3, 1, 2)
    return float(pixel_motion_magnitude(d, s, reduction="mean"))


def motion_range_rule(m: float, min_motion: float = 0.0, max_motion: float = 1.0) -> RuleResult:
    if m < min_motion:
        return RuleResult(False, "motion_range", f"motion_too_small: motion magnitude {m:.5f} < {min_motion}", m)
    if m > max_motion:
        return RuleResult(False, "motion_range", f"motion_too_large: motion magnitude {m:.5f} > {max_motion}", m)
    return RuleResult(True, "motion_range", f"motion magnitude {m:.5f}", m)
