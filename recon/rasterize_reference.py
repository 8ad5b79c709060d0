"""Brute-force rasteriser: the slow, obvious twin of :func:`diffusion4d.recon.rasterize.rasterize` (tests only).

Every pixel meets every projected Gaussian, one Gaussian at a time in depth order, exactly
as the compositing rule reads: no tiles, no bounding boxes, no batching tricks. It shares the
projection and SH maths with the fast path (those are tested against gsplat separately).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from diffusion4d.recon.projection import ALPHA_THRESHOLD, project_gaussians
from diffusion4d.recon.rasterize import ALPHA_MAX, TRANSMITTANCE_MIN, resolve_colors


def rasterize_dense(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: Optional[int] = None,
    background: Union[None, float, Tensor] = None,
    eps2d: float = 0.3,
    alpha_max: float = ALPHA_MAX,
) -> Tuple[Tensor, Tensor]:
    """Same arguments and outputs (images ``[C,H,W,D]``, alphas ``[C,H,W,1]``) as ``rasterize``."""
    proj = project_gaussians(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d=eps2d)
    cols = resolve_colors(colors, means, viewmats, sh_degree)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype) + 0.5, torch.arange(width, dtype=means.dtype) + 0.5, indexing="ij"
    )
    images, alphas = [], []
    for c in range(viewmats.shape[0]):
        visible = torch.nonzero((proj.radii[c] > 0).all(-1), as_tuple=True)[0]
        order = visible[torch.argsort(proj.depths[c, visible].detach(), stable=True)]
        T = torch.ones(height, width, dtype=means.dtype)
        img = torch.zeros(height, width, cols.shape[-1], dtype=cols.dtype)
        done = torch.zeros(height, width, dtype=torch.bool)
        for g in order.tolist():
            mx, my = proj.means2d[c, g]
            a, b, cc = proj.conics[c, g]
            dx, dy = xs - mx, ys - my
            sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
            alpha = torch.clamp(opacities[g] * torch.exp(-sigma), max=alpha_max)
            skip = done | (alpha < ALPHA_THRESHOLD)
            finishing = ~skip & (T * (1.0 - alpha) <= TRANSMITTANCE_MIN)
            done = done | finishing
            alpha = torch.where(skip | finishing, torch.zeros_like(alpha), alpha)
            img = img + (alpha * T)[..., None] * cols[c, g]
            T = T * (1.0 - alpha)
        acc = (1.0 - T)[..., None]
        if background is not None:
            bg = torch.as_tensor(background, dtype=img.dtype)
            bg = bg[c] if bg.dim() == 2 else bg
            img = img + (1.0 - acc) * bg
        images.append(img)
        alphas.append(acc)
    return torch.stack(images), torch.stack(alphas)
