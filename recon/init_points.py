"""Where the coarse stage's Gaussians start: uniformly in the box, or inside the clip's visual hull.

An orbit of a few views has no structure-from-motion points to start from. Uniform points in the
asset's box leave most Gaussians in empty space, where a few views cannot tell a floater from the
background, so the fit depends on which points the seed happened to draw. The visual hull keeps
only the points that every view sees on the object (the pixel farther from the background than
:data:`diffusion4d.metrics.SILHOUETTE_THRESHOLD`), which is all a set of silhouettes can say
about where the object is, and starts each Gaussian at the colour the views see there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from diffusion4d.logging_utils import get_logger
from diffusion4d.metrics import silhouette
from diffusion4d.recon.gaussians import GaussianModel

if TYPE_CHECKING:  # the config and the views are only annotations here
    from diffusion4d.recon.fit import Views
    from diffusion4d.recon.recon_config import ReconConfig

log = get_logger(__name__)

#: candidates drawn per round, as a multiple of the points wanted, and the most rounds drawn
CANDIDATES_PER_ROUND = 8
MAX_ROUNDS = 16
#: fewer hull points than this and the box is used instead
MIN_HULL_POINTS = 16


def grow_masks(masks: Tensor, pixels: int) -> Tensor:
    """Masks ``[V, H, W]`` (bool) grown by ``pixels`` in every direction (a square neighbourhood)."""
    if pixels <= 0:
        return masks
    k = 2 * pixels + 1
    return F.max_pool2d(masks[:, None].float(), k, stride=1, padding=pixels)[:, 0] > 0


def foreground_masks(images: Tensor, background: float, dilate: int = 1) -> Tensor:
    """Object masks ``[V, H, W]`` (bool) of images ``[V, H, W, 3]`` over a uniform ``background``
    grey (the project's silhouette, :func:`diffusion4d.metrics.silhouette`), grown by ``dilate`` px
    so a point on the object's edge is not carved away by a pixel's rounding."""
    return grow_masks(silhouette(images.permute(0, 3, 1, 2), background=background), dilate)


def project(points: Tensor, viewmats: Tensor, Ks: Tensor) -> Tuple[Tensor, Tensor]:
    """Pixel coordinates ``[V, N, 2]`` (x, y) and depths ``[V, N]`` of world points ``[N, 3]`` in
    cameras ``viewmats [V, 4, 4]`` (world-to-camera, OpenCV) with intrinsics ``Ks [V, 3, 3]``."""
    cam = points @ viewmats[:, :3, :3].transpose(1, 2) + viewmats[:, None, :3, 3]  # [V, N, 3]
    depth = cam[..., 2]
    pix = cam @ Ks.transpose(1, 2)
    return pix[..., :2] / depth.clamp_min(1e-8)[..., None], depth


def hull_votes(
    points: Tensor, masks: Tensor, core: Tensor, images: Tensor, viewmats: Tensor, Ks: Tensor
) -> Tuple[Tensor, Tensor, Tensor]:
    """For points ``[N, 3]``: how many views see them inside the frame ``[N]``, how many of those see
    them on the object (``masks [V, H, W]``, grown) ``[N]``, and their colour ``[N, 3]``: the mean
    of the pixels they fall on inside the ungrown masks ``core``, or the mean of every core pixel
    when they fall on none (the grown ring is background; pixel ``(x, y)`` covers
    ``[x, x + 1) x [y, y + 1)``)."""
    V, H, W = masks.shape
    uv, depth = project(points, viewmats, Ks)
    px, py = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (depth > 0) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    flat = py.clamp(0, H - 1) * W + px.clamp(0, W - 1)  # [V, N]
    on = masks.reshape(V, -1).gather(1, flat) & inside  # [V, N]
    on_core = core.reshape(V, -1).gather(1, flat) & inside
    rgb = images.reshape(V, -1, 3).gather(1, flat[..., None].expand(-1, -1, 3))  # [V, N, 3]
    use = on_core.to(rgb.dtype)  # [V, N]
    colour = (rgb * use[..., None]).sum(0) / use.sum(0).clamp_min(1)[:, None]
    everywhere = images[core].mean(0) if core.any() else images.new_full((3,), 0.5)
    colour = torch.where(on_core.any(0)[:, None], colour, everywhere)
    return inside.sum(0), on.sum(0), colour


def visual_hull_points(
    images: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    num_points: int,
    extent: float,
    background: float,
    generator: Optional[torch.Generator] = None,
    misses: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Up to ``num_points`` points ``[M, 3]`` drawn uniformly in the box ``[-extent/2, extent/2]^3``
    that fall on the object in every view that sees them (``misses`` views may disagree: a moving
    part is not where it was in every frame), and their mean observed colours ``[M, 3]``.

    Candidates are drawn in rounds until ``num_points`` are kept; a hull smaller than a round's
    share keeps fewer (logged). ``M == 0`` when no view shows any object.
    """
    core = foreground_masks(images, background, dilate=0)
    masks = grow_masks(core, 1)
    kept, colours, drawn, count = [], [], 0, 0
    for _ in range(MAX_ROUNDS):
        cand = (torch.rand(CANDIDATES_PER_ROUND * num_points, 3, generator=generator) - 0.5) * extent
        cand = cand.to(images.device)
        drawn += len(cand)
        seen, hits, colour = hull_votes(cand, masks, core, images, viewmats, Ks)
        keep = (seen > 0) & (hits >= seen - misses)
        kept.append(cand[keep])
        colours.append(colour[keep])
        count += len(kept[-1])
        if count >= num_points:
            break
    points, colour = torch.cat(kept)[:num_points], torch.cat(colours)[:num_points]
    if len(points) < num_points:
        log.info("visual hull: %d of %d points kept from %d candidates (a small object)", len(points), num_points, drawn)
    return points, colour


def initial_gaussians(cfg: "ReconConfig", views: "Views", generator: torch.Generator) -> GaussianModel:
    """The coarse stage's starting Gaussians (on the CPU) for ``cfg.init``: ``mode: box`` draws
    ``num_points`` uniformly in the box with random colours; ``mode: visual_hull`` draws them inside
    the visual hull of ``views`` (all the views the coarse stage fits) with the colours seen there,
    and falls back to the box when the views show too little object to carve from."""
    init = cfg.init
    if init.mode == "visual_hull":
        points, colours = visual_hull_points(
            views.images, views.viewmats, views.Ks, init.num_points, init.extent, cfg.background, generator, init.hull_misses
        )
        if len(points) >= MIN_HULL_POINTS:
            return GaussianModel.from_points(points.cpu(), colours.cpu(), init.sh_degree, init.init_opacity, init.scale_factor)
        log.warning("visual hull: only %d points fall on the object in every view; starting from the box instead", len(points))
    return GaussianModel.random(init.num_points, init.extent, init.sh_degree, init.init_opacity, generator, init.scale_factor)


__all__ = ["grow_masks", "foreground_masks", "project", "hull_votes", "visual_hull_points", "initial_gaussians"]
