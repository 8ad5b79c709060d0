"""The differentiable SSIM term of the Gaussian fitting loss (Gaussian window, valid convolution).

This is a training loss, not a metric: held-out PSNR/SSIM and LPIPS come from
:mod:`diffusion4d.metrics`, the module every stage reports with.
"""

from __future__ import annotations


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


