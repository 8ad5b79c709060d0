"""The 3D Gaussian model: raw (unconstrained) parameters and their activations.

Parameters live in an ``nn.ParameterDict`` with one entry per gsplat key, so gsplat's
densification strategies (which replace entries in place) work on it unchanged:

=============  ==============  ===========================================
key            shape           activation
=============  ==============  ===========================================
``means``      [N, 3]          identity (world space)
``quats``      [N, 4]          normalised (w, x, y, z)
``scales``     [N, 3]          ``exp`` (log-scales are stored)
``opacities``  [N]             ``sigmoid`` (logits are stored)
``sh0``        [N, 1, 3]       DC SH coefficient (colour = SH + 0.5)
``shN``        [N, K-1, 3]     higher SH bands, ``K = (sh_degree + 1)^2``
=============  ==============  ===========================================
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn

from diffusion4d.recon.sh import num_sh_bases, rgb_to_sh0


def knn_mean_distance(points: Tensor, k: int = 3, chunk: int = 2048) -> Tensor:
    """Mean distance ``[N]`` of every point to its ``k`` nearest neighbours (brute force, chunked)."""
    n = points.shape[0]
    k = min(k, max(n - 1, 1))
    out = []
    for start in range(0, n, chunk):
        d = torch.cdist(points[start : start + chunk], points)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        out.append(d.topk(k, largest=False).values.mean(-1))
    return torch.cat(out).clamp_min(1e-4)


class GaussianModel(nn.Module):
    """N anisotropic 3D Gaussians with SH colour of degree ``sh_degree``."""

    def __init__(self, params: Dict[str, Tensor], sh_degree: int) -> None:
        super().__init__()
        num_sh_bases(sh_degree)
        self.sh_degree = sh_degree
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in params.items()})

    # construction --------------------------------------------------------------------------
    @classmethod
    def from_points(
        cls,
        points: Tensor,  # [N, 3]
        colors: Optional[Tensor] = None,  # [N, 3] in [0, 1]
        sh_degree: int = 0,
        init_opacity: float = 0.1,
        scale_factor: float = 1.0,
    ) -> "GaussianModel":
        """Isotropic Gaussians at ``points``; scale = mean distance to the 3 nearest neighbours."""
        n = points.shape[0]
        points = points.detach().float()
        if colors is None:
            colors = torch.full((n, 3), 0.5)
        scales = torch.log(knn_mean_distance(points) * scale_factor)[:, None].repeat(1, 3)
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        k = num_sh_bases(sh_degree)
        params = {
            "means": points.clone(),
            "quats": quats,
            "scales": scales,
            "opacities": torch.logit(torch.full((n,), float(init_opacity))),
            "sh0": rgb_to_sh0(colors.float())[:, None, :],
            "shN": torch.zeros(n, k - 1, 3),
        }
        return cls(params, sh_degree)

    @classmethod
    def random(
        cls,
        num_points: int,
        extent: float = 1.0,
        sh_degree: int = 0,
        init_opacity: float = 0.1,
        generator: Optional[torch.Generator] = None,
        scale_factor: float = 1.0,
    ) -> "GaussianModel":
        """``num_points`` Gaussians uniformly in the box ``[-extent/2, extent/2]^3`` with random colours."""
        points = (torch.rand(num_points, 3, generator=generator) - 0.5) * extent
        colors = torch.rand(num_points, 3, generator=generator)
        return cls.from_points(points, colors, sh_degree, init_opacity, scale_factor)

    # access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.params["means"].shape[0]

    @property
    def means(self) -> Tensor:
        return self.params["means"]

    def sh(self) -> Tensor:
        """SH coefficients ``[N, K, 3]``."""
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    def activated(self) -> Dict[str, Tensor]:
        """Rasteriser inputs: means, quats, scales (exp), opacities (sigmoid), sh ``[N, K, 3]``."""
        p = self.params
        return {
            "means": p["means"],
            "quats": p["quats"],
            "scales": torch.exp(p["scales"]),
            "opacities": torch.sigmoid(p["opacities"]),
            "sh": self.sh(),
        }

    def raw(self) -> Dict[str, Tensor]:
        """Detached copies of the raw parameters (what the exporters write)."""
        return {k: v.detach().clone() for k, v in self.params.items()}
