"""Test twins of the reconstruction stage (tests and benchmarks only, never the fitting path).

* Known animated Gaussian scenes rendered as clips: ground truth for tests and benchmarks. A
  scene is a set of Gaussians in the unit box plus a motion (a rigid translation and a spin of
  one part over time); :func:`write_synthetic_asset` renders its ``dynamic``, ``static`` and
  ``front`` clips with the torch rasteriser in the clip layout of the curation stage.
* :func:`rasterize_dense`, the brute-force rasteriser: the slow, obvious twin of
  :func:`diffusion4d.recon.rasterize.rasterize`. Every pixel meets every projected Gaussian, one
  Gaussian at a time in depth order, exactly as the compositing rule reads: no tiles, no bounding
  boxes, no batching tricks. It shares the projection and SH maths with the fast path (those are
  tested against gsplat separately).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from diffusion4d.cameras import CameraTrajectory, orbit_trajectory
from diffusion4d.io import write_clip
from diffusion4d.recon.projection import ALPHA_THRESHOLD, project_gaussians, quat_to_rotmat
from diffusion4d.recon.rasterize import ALPHA_MAX, TRANSMITTANCE_MIN, rasterize, resolve_colors


def synthetic_scene(num: int = 400, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Two blobs of coloured Gaussians (a body and a moving part); ``moving`` flags the part."""
    g = torch.Generator().manual_seed(seed)
    body = torch.randn(num // 2, 3, generator=g) * torch.tensor([0.18, 0.12, 0.25])
    part = torch.randn(num - num // 2, 3, generator=g) * 0.08 + torch.tensor([0.22, 0.0, 0.15])
    means = torch.cat([body, part]).clamp(-0.45, 0.45)
    colors = torch.cat(
        [
            torch.tensor([0.8, 0.3, 0.2]) + 0.15 * torch.rand(num // 2, 3, generator=g),
            torch.tensor([0.2, 0.4, 0.85]) + 0.15 * torch.rand(num - num // 2, 3, generator=g),
        ]
    ).clamp(0, 1)
    return {
        "means": means,
        "quats": torch.randn(num, 4, generator=g),
        "scales": torch.exp(torch.rand(num, 3, generator=g) * 0.8 - 3.6),
        "opacities": torch.rand(num, generator=g) * 0.3 + 0.7,
        "colors": colors,
        "moving": torch.arange(num) >= num // 2,
    }


def scene_at(scene: Dict[str, torch.Tensor], t: float) -> Dict[str, torch.Tensor]:
    """The scene at normalised time ``t``: the part moves down and spins about Z."""
    out = dict(scene)
    m = scene["moving"]
    angle = 0.6 * math.sin(2 * math.pi * t)
    c, s = math.cos(angle), math.sin(angle)
    R = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pivot = torch.tensor([0.1, 0.0, 0.1])
    means = scene["means"].clone()
    means[m] = (means[m] - pivot) @ R.T + pivot + torch.tensor([0.0, 0.0, -0.12 * math.sin(math.pi * t)])
    rot = quat_to_rotmat(scene["quats"][m])
    quats = scene["quats"].clone()
    quats[m] = _rotmat_to_quat(R @ rot)
    out["means"], out["quats"] = means, quats
    return out


def _rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    w = torch.sqrt((1 + R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]).clamp_min(1e-8)) / 2
    x = (R[..., 2, 1] - R[..., 1, 2]) / (4 * w)
    y = (R[..., 0, 2] - R[..., 2, 0]) / (4 * w)
    z = (R[..., 1, 0] - R[..., 0, 1]) / (4 * w)
    return torch.stack([w, x, y, z], -1)


def render_scene_clip(scene: Dict[str, torch.Tensor], cameras: CameraTrajectory) -> np.ndarray:
    """RGBA uint8 frames ``[N, H, W, 4]`` (straight alpha): frame i from camera i at time i."""
    frames = []
    for f in cameras.frames:
        s = scene_at(scene, f.time)
        vm = torch.as_tensor(np.linalg.inv(f.c2w), dtype=torch.float32)[None]
        K = torch.as_tensor(f.K, dtype=torch.float32)[None]
        with torch.no_grad():
            img, alpha, _ = rasterize(
                s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], vm, K,
                cameras.width, cameras.height, backend="torch",
            )  # fmt: skip
        straight = torch.where(alpha > 0, img / alpha.clamp_min(1e-6), torch.zeros_like(img))
        rgba = torch.cat([straight, alpha], -1)[0].clamp(0, 1)
        frames.append((rgba * 255 + 0.5).to(torch.uint8).numpy())
    return np.stack(frames)


def write_synthetic_asset(root: Path, uid: str = "synthetic", frames: int = 24, size: int = 64, seed: int = 0,
                          num: int = 400, elevation: float = 15.0) -> Path:  # fmt: skip
    """Write ``<root>/<uid>/{dynamic,static,front}`` clips of a synthetic scene; returns the dynamic clip."""
    scene = synthetic_scene(num, seed)
    for mode in ("dynamic", "static", "front"):
        cams = orbit_trajectory(mode, frames, width=size, height=size, elevation=elevation)  # type: ignore[arg-type]
        write_clip(Path(root) / uid / mode, render_scene_clip(scene, cams), cams)
    return Path(root) / uid / "dynamic"


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
