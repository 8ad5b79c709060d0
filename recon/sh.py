"""Real spherical harmonics up to degree 3, in the 3D Gaussian Splatting convention.

Colours are ``max(sum_k Y_k(d) c_k + 0.5, 0)`` with ``d`` the unit direction from the camera
centre to the Gaussian (the convention of 3DGS and gsplat, so PLY files interoperate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel for ``degree`` (0..3): ``(degree + 1)^2``."""
    if not 0 <= degree <= 3:
        raise ValueError(f"sh degree must be in 0..3, got {degree}")
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values ``[..., (degree+1)^2]`` at directions ``[...,3]`` (normalised here)."""
    num_sh_bases(degree)
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            SH_C2[0] * xy,
            SH_C2[1] * yz,
            SH_C2[2] * (2.0 * zz - xx - yy),
            SH_C2[3] * xz,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * xy * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Raw SH response ``[..., 3]`` of coefficients ``[..., K, 3]`` (K >= (degree+1)^2) along ``dirs`` ``[..., 3]``."""
    k = num_sh_bases(degree)
    if coeffs.shape[-2] < k:
        raise ValueError(f"sh degree {degree} needs {k} coefficients, got {coeffs.shape[-2]}")
    return (sh_bases(degree, dirs)[..., None] * coeffs[..., :k, :]).sum(dim=-2)


def sh_to_rgb(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colours ``[..., 3] = max(eval_sh + 0.5, 0)`` (the 3DGS/gsplat activation)."""
    return torch.clamp_min(eval_sh(degree, dirs, coeffs) + 0.5, 0.0)


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """DC coefficient that renders as ``rgb`` (inverse of the degree-0 activation)."""
    return (rgb - 0.5) / SH_C0
