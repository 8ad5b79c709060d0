"""Deformation fields over time: a HexPlane + small MLP heads (4DGS), and per-frame offsets (4Real).

:class:`HexPlaneDeformation` factorises a 4D (x, y, z, t) feature field into six planes
(xy, xz, yz, xt, yt, zt) at one or more spatial resolutions (K-Planes / HexPlane). A point's
feature is the Hadamard product of its six bilinear plane samples, concatenated over
resolutions; MLP heads map it to deltas of position, rotation (added to the quaternion) and
log-scale. The heads' last layers start at zero, so training begins from the canonical set.
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: coordinate pairs of the six planes: (x,y) (x,z) (y,z) (x,t) (y,t) (z,t)
PLANE_AXES: List[Tuple[int, int]] = list(itertools.combinations(range(4), 2))


class HexPlaneDeformation(nn.Module):
    """``forward(means [N,3], t) -> (d_means [N,3], d_quats [N,4], d_log_scales [N,3])``."""

    def __init__(
        self,
        resolutions: Sequence[int] = (32,),
        time_resolution: int = 12,
        features: int = 16,
        hidden: int = 64,
        bound: float = 1.0,
    ) -> None:
        super().__init__()
        self.config = dict(
            resolutions=list(resolutions), time_resolution=time_resolution, features=features, hidden=hidden, bound=bound
        )
        self.bound = bound
        self.planes = nn.ParameterList()
        for res in resolutions:
            for a, b in PLANE_AXES:
                ra = time_resolution if a == 3 else res
                rb = time_resolution if b == 3 else res
                if b == 3:  # time planes start at 1: the product ignores time until trained
                    init = torch.ones(1, features, rb, ra)
                else:
                    init = torch.empty(1, features, rb, ra).uniform_(0.1, 0.5)
                self.planes.append(nn.Parameter(init))
        dim = features * len(resolutions)
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({"means": nn.Linear(hidden, 3), "quats": nn.Linear(hidden, 4), "scales": nn.Linear(hidden, 3)})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def features(self, means: Tensor, t: float) -> Tensor:
        """HexPlane features ``[N, F * len(resolutions)]`` at positions ``means`` and time ``t`` in [0, 1]."""
        xyz = (means / self.bound).clamp(-1.0, 1.0)
        tt = torch.full_like(xyz[:, :1], 2.0 * float(t) - 1.0)
        coords = torch.cat([xyz, tt], dim=-1)  # [N, 4] in [-1, 1]
        out, i = [], 0
        n_res = len(self.planes) // len(PLANE_AXES)
        for _ in range(n_res):
            feat = 1.0
            for a, b in PLANE_AXES:
                grid = coords[:, [a, b]][None, :, None, :]  # [1, N, 1, 2] (x -> axis a, y -> axis b)
                sample = F.grid_sample(self.planes[i], grid, mode="bilinear", align_corners=True)  # [1, F, N, 1]
                feat = feat * sample[0, :, :, 0].t()
                i += 1
            out.append(feat)
        return torch.cat(out, dim=-1)

    def forward(self, means: Tensor, t: float) -> Tuple[Tensor, Tensor, Tensor]:
        h = self.trunk(self.features(means, t))
        return self.heads["means"](h), self.heads["quats"](h), self.heads["scales"](h)

    def total_variation(self) -> Tensor:
        """Squared-difference smoothness of every plane (both axes), plus a second-order
        smoothness along time for the time planes (4DGS's regulariser)."""
        tv = 0.0
        for i, plane in enumerate(self.planes):
            a, b = PLANE_AXES[i % len(PLANE_AXES)]
            tv = tv + (plane[..., 1:, :] - plane[..., :-1, :]).pow(2).mean() + (plane[..., :, 1:] - plane[..., :, :-1]).pow(2).mean()
            if b == 3 and plane.shape[-2] > 2:
                d2 = plane[..., 2:, :] - 2 * plane[..., 1:-1, :] + plane[..., :-2, :]
                tv = tv + d2.pow(2).mean()
        return tv


def deform(gaussians: Dict[str, Tensor], field: nn.Module, t: float) -> Dict[str, Tensor]:
    """Apply ``field`` at time ``t`` to activated Gaussians (``means, quats, scales, opacities, sh``)."""
    d_means, d_quats, d_scales = field(gaussians["means"], t)
    out = dict(gaussians)
    out["means"] = gaussians["means"] + d_means
    out["quats"] = gaussians["quats"] + d_quats
    out["scales"] = gaussians["scales"] * torch.exp(d_scales)
    return out


def knn_graph(points: Tensor, k: int = 8, chunk: int = 2048) -> Tensor:
    """Indices ``[N, k]`` of each point's ``k`` nearest neighbours (brute force, chunked)."""
    k = min(k, points.shape[0] - 1)
    out = []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start : start + chunk], points)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        out.append(d.topk(k, largest=False).indices)
    return torch.cat(out)


def arap_loss(canonical: Tensor, deformed: Tensor, neighbours: Tensor) -> Tensor:
    """As-rigid-as-possible penalty: mean squared change of k-NN distances ``|x_i - x_j|``."""
    d0 = (canonical[:, None] - canonical[neighbours]).norm(dim=-1)
    d1 = (deformed[:, None] - deformed[neighbours]).norm(dim=-1)
    return (d1 - d0).pow(2).mean()
