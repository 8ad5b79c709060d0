"""Image metrics shared by every stage: PSNR and SSIM between frames, and silhouettes.

One implementation each, used by evaluation (``eval``), the curation SSIM rule
(:mod:`diffusion4d.ssim_rule`) and benchmarks, so a number means the same everywhere.

Both run on RGB in [0, 1] composited over a WHITE background
(:func:`diffusion4d.io.frames_to_float`, the convention of every stage), compared frame by
frame at the same index; an asset's value is the mean over its frames.

* PSNR: ``10 log10(1 / MSE)`` per frame (torchmetrics, ``data_range=1``); identical frames give
  ``inf``.
* SSIM: torchmetrics' Gaussian-window SSIM (11 px, sigma 1.5, K1=0.01, K2=0.03; the SSIM map
  covers the whole frame, borders by reflection padding, and is averaged over pixels and
  channels), the configuration of the curation rule (:func:`diffusion4d.ssim_rule.ssim`), computed
  in float64; identical frames give 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def to_tensor(frames_rgb: np.ndarray) -> torch.Tensor:
    """float RGB ``[N, H, W, 3]`` in [0, 1] -> ``[N, 3, H, W]`` float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frames_rgb, dtype=np.float32)).permute(0, 3, 1, 2)


def match_size(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Resize ``pred`` ``[N, 3, h, w]`` to the target's ``H, W`` (bilinear, antialiased) if they differ."""
    if pred.shape[-2:] == target.shape[-2:]:
        return pred
    return F.interpolate(pred, size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR of ``[N, 3, H, W]`` images in [0, 1] -> ``[N]`` dB (``inf`` where identical)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return peak_signal_noise_ratio(pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)).float()


def ssim_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of ``[N, 3, H, W]`` images in [0, 1] -> ``[N]`` (1 where identical)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    # float64: in float32, round-off in E[x^2] - mu^2 leaves identical white-background frames at 0.999997
    return structural_similarity_index_measure(
        pred.double(), target.double(), data_range=1.0, reduction="none", gaussian_kernel=True, kernel_size=11, sigma=1.5
    ).float()


#: a pixel belongs to the object when its RGB (composited over white) is farther than this from
#: white (max over channels, [0, 1]); the one threshold every silhouette in the project uses
SILHOUETTE_THRESHOLD = 0.05


def silhouette(frames_rgb: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD) -> torch.Tensor:
    """Object masks ``[N, H, W]`` (bool) of frames ``[N, 3, H, W]`` in [0, 1] over a white background."""
    return (1.0 - frames_rgb).amax(dim=1) > threshold


def silhouette_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD) -> torch.Tensor:
    """Per-frame IoU ``[N]`` of the silhouettes of ``[N, 3, H, W]`` frames (1 where both are empty)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    a, b = silhouette(pred, threshold), silhouette(target, threshold)
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).float()
