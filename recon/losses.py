"""Training terms of the Gaussian fitting loss: the differentiable SSIM (Gaussian window, valid
convolution) and the anisotropy penalty on the Gaussians' scales.

This is a training loss, not a metric: held-out PSNR/SSIM and LPIPS come from
:mod:`diffusion4d.metrics`, the module every stage reports with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from diffusion4d.logging_utils import get_logger

log = get_logger(__name__)


def _gauss_1d(size: int, sigma: float, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_map(mu_x: Tensor, mu_y: Tensor, sxx: Tensor, syy: Tensor, sxy: Tensor) -> Tensor:
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of images ``[B, H, W, C]`` in [0, 1] (Wang et al. 2004, Gaussian window, valid conv).

    The 2D Gaussian window is the outer product of a 1D one, so the five local means (of x, y,
    x^2, y^2, xy) are one stacked row convolution and one column convolution: 2 x 11 taps per
    pixel instead of 121. :func:`ssim_reference` is the direct 2D form the tests hold it to.
    """
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    B, C = x.shape[:2]
    window = min(window, x.shape[-1], x.shape[-2])
    g = _gauss_1d(window, sigma, x)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5C, H, W]
    n = stack.shape[1]
    rows = F.conv2d(stack, g.view(1, 1, 1, -1).expand(n, 1, 1, window), groups=n)
    means = F.conv2d(rows, g.view(1, 1, -1, 1).expand(n, 1, window, 1), groups=n)
    mu_x, mu_y, exx, eyy, exy = means.split(C, dim=1)
    return _ssim_map(mu_x, mu_y, exx - mu_x**2, eyy - mu_y**2, exy - mu_x * mu_y).mean()


def ssim_reference(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """:func:`ssim` with the full 2D window, one convolution per local mean (tests only)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    C = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    g = _gauss_1d(window, sigma, x)
    w = (g[:, None] * g[None, :]).expand(C, 1, window, window).contiguous()
    mu_x, mu_y = F.conv2d(x, w, groups=C), F.conv2d(y, w, groups=C)
    return _ssim_map(mu_x, mu_y, F.conv2d(x * x, w, groups=C) - mu_x**2, F.conv2d(y * y, w, groups=C) - mu_y**2,
                     F.conv2d(x * y, w, groups=C) - mu_x * mu_y).mean()


def anisotropy_penalty(log_scales: Tensor, max_ratio: float) -> Tensor:
    """Mean over Gaussians of ``max(0, log(s_max / s_min) - log(max_ratio))`` for log-scales ``[N, 3]``.

    Zero for every Gaussian whose longest axis is at most ``max_ratio`` times its shortest. Few
    views let thin disks explain each training view edge-on to none of them; seen from a held-out
    angle they show as streaks and gaps. :func:`anisotropy_penalty_reference` is the loop over
    Gaussians the tests hold it to.
    """
    if len(log_scales) == 0:
        return log_scales.sum()
    spread = log_scales.max(dim=-1).values - log_scales.min(dim=-1).values
    return F.relu(spread - math.log(max_ratio)).mean()


def anisotropy_penalty_reference(log_scales: Tensor, max_ratio: float) -> Tensor:
    """:func:`anisotropy_penalty` one Gaussian at a time, from the scales themselves (tests only)."""
    terms = []
    for row in log_scales:
        s = row.exp()
        terms.append(torch.clamp(torch.log(s.max() / s.min()) - math.log(max_ratio), min=0.0))
    return torch.stack(terms).mean()
