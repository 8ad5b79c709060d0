"""EWA projection of 3D Gaussians to the image plane (pure torch, differentiable).

The maths follows 3D Gaussian Splatting (Kerbl et al. 2023, Sec. 4) and mirrors gsplat's
``fully_fused_projection`` for pinhole cameras, so the torch and gsplat backends agree:

* 3D covariance ``Sigma = R S S^T R^T`` from a (normalised) quaternion ``wxyz`` and scales;
* world -> camera with the world-to-camera matrix (OpenCV: x right, y down, z forward);
* the Jacobian of the perspective projection evaluated at the (frustum-clamped) mean,
  ``Sigma_2d = J W Sigma W^T J^T``, plus ``eps2d`` pixels of dilation (0.3, as gsplat/3DGS);
* an opacity-aware screen-space radius: the Gaussian contributes alpha >= 1/255 only inside
  ``d^T Sigma_2d^-1 d <= 2 log(255 o)``, capped at 3.33 sigma (exactly gsplat's bound).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: a Gaussian whose alpha falls below this is skipped by the compositor (as gsplat/3DGS)
ALPHA_THRESHOLD: float = 1.0 / 255.0
#: largest extent of a Gaussian in standard deviations (gsplat's 3.33)
MAX_EXTENT_SIGMA: float = 3.33


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Quaternions ``[..., 4]`` (w, x, y, z; normalised here) -> rotation matrices ``[..., 3, 3]``."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World-space covariances ``[..., 3, 3] = (R S)(R S)^T`` from quats ``[..., 4]`` and scales ``[..., 3]``."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


class Projected(NamedTuple):
    """Per camera and Gaussian screen-space quantities; all ``[C, N, ...]``."""

    means2d: Tensor  # [C, N, 2] pixel coordinates of the projected means
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    radii: Tensor  # [C, N, 2] int32 half-extent in pixels (x, y); 0 = culled
    cov2d: Tensor  # [C, N, 2, 2] dilated 2D covariance


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    """Project N Gaussians into C pinhole cameras (EWA splatting).

    Args:
        means, quats, scales: world-space Gaussians (scales are activated, not log).
        opacities: activated opacities in [0, 1]; used for the opacity-aware radius.
        viewmats: world-to-camera matrices (OpenCV). Ks: intrinsics in pixels.
        eps2d: dilation added to the 2D covariance diagonal, in pixels^2.

    Returns:
        :class:`Projected`; Gaussians behind the near plane, outside the image, or whose
        opacity is below 1/255 get radius 0 (they do not render).
    """
    R = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    t = viewmats[:, None, :3, 3]  # [C, 1, 3]
    means_c = (R @ means[None, :, :, None])[..., 0] + t  # [C, N, 3]
    cov_c = R @ covariance_3d(quats, scales)[None] @ R.transpose(-1, -2)  # [C, N, 3, 3]

    tx, ty, tz = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # clamp the point used for the Jacobian to 1.3x the frustum (as 3DGS/gsplat) for stability
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    txc = tz * torch.minimum(torch.maximum(tx / tz, -lim_x_neg), lim_x_pos)
    tyc = tz * torch.minimum(torch.maximum(ty / tz, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack(
        [fx / tz, zero, -fx * txc / (tz * tz), zero, fy / tz, -fy * tyc / (tz * tz)], dim=-1
    ).reshape(tz.shape + (2, 3))
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    cov2d = cov2d + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], dim=-1)

    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det = (a * c - b * b).clamp(min=1e-10)
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)

    radii = screen_radii(means2d, tz, a, c, opacities, width, height, near_plane, far_plane)
    return Projected(means2d, means_c[..., 2], conics, radii, cov2d)


@torch.no_grad()
def screen_radii(
    means2d: Tensor,  # [C, N, 2]
    depths: Tensor,  # [C, N]
    var_x: Tensor,  # [C, N] dilated 2D variance along x (cov2d[..., 0, 0])
    var_y: Tensor,  # [C, N] along y
    opacities: Tensor,  # [N]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Tensor:
    """Opacity-aware half-extents ``[C, N, 2]`` int32 in pixels; 0 for Gaussians that do not
    render (behind the near plane, off the image, or below the alpha threshold)."""
    tz = depths.detach()
    opac = opacities.detach()[None].expand_as(tz)
    extent = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
    extent = extent.clamp(max=MAX_EXTENT_SIGMA)
    radius = torch.stack([torch.ceil(extent * var_x.detach().sqrt()), torch.ceil(extent * var_y.detach().sqrt())], -1)
    m2 = means2d.detach()
    valid = (
        (tz > near_plane)
        & (tz < far_plane)
        & (opac >= ALPHA_THRESHOLD)
        & (m2[..., 0] + radius[..., 0] > 0)
        & (m2[..., 0] - radius[..., 0] < width)
        & (m2[..., 1] + radius[..., 1] > 0)
        & (m2[..., 1] - radius[..., 1] < height)
    )
    return torch.where(valid[..., None], radius, torch.zeros_like(radius)).to(torch.int32)


def camera_centers(viewmats: Tensor) -> Tensor:
    """Camera centres in world space ``[C, 3]`` from world-to-camera matrices ``[C, 4, 4]``."""
    R = viewmats[:, :3, :3]
    return -(R.transpose(-1, -2) @ viewmats[:, :3, 3:4])[..., 0]


def gaussian_extent_sigma(opacity: float) -> float:
    """Mahalanobis radius inside which a Gaussian of ``opacity`` has alpha >= 1/255 (capped at 3.33)."""
    if opacity < ALPHA_THRESHOLD:
        return 0.0
    return min(MAX_EXTENT_SIGMA, math.sqrt(2.0 * math.log(opacity / ALPHA_THRESHOLD)))
