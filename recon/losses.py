"""Photometric losses for Gaussian fitting: L1, SSIM (differentiable, Gaussian window), optional LPIPS."""

from __future__ import annotations

import math
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from diffusion4d.logging_utils import get_logger

log = get_logger(__name__)


def _gauss_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of images ``[B, H, W, C]`` in [0, 1] (Wang et al. 2004, Gaussian window, valid conv)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    C = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gauss_window(window, sigma, C, x)
    mu_x, mu_y = F.conv2d(x, w, groups=C), F.conv2d(y, w, groups=C)
    sxx = F.conv2d(x * x, w, groups=C) - mu_x**2
    syy = F.conv2d(y * y, w, groups=C) - mu_y**2
    sxy = F.conv2d(x * y, w, groups=C) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of images in [0, 1]."""
    mse = F.mse_loss(a.clamp(0, 1), b.clamp(0, 1)).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def load_lpips(net: str = "alex") -> Optional[torch.nn.Module]:
    """The ``lpips`` metric when its backbone weights are in the local torch hub cache, else None
    (with one log line saying what is missing). Never downloads."""
    try:
        import lpips
        import torchvision
    except ImportError:
        log.info("LPIPS loss skipped: the lpips package is not installed")
        return None
    weights = {"alex": torchvision.models.AlexNet_Weights.IMAGENET1K_V1, "vgg": torchvision.models.VGG16_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"unknown LPIPS net {net!r}; valid: alex, vgg")
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights[net].url))
    if not os.path.isfile(path):
        log.info("LPIPS loss skipped: backbone weights %s not found (put them there to enable it)", path)
        return None
    model = lpips.LPIPS(net=net, verbose=False).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
