"""Fitting loops: static (coarse) Gaussians, per-frame offsets, and time deformation.

Each loop is a function of (model, views, config) that optimises in place and returns the
number of steps run; the order of the stages lives in :mod:`diffusion4d.recon.pipeline`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion4d.io import frames_to_float, read_clip
from diffusion4d.logging_utils import get_logger, progress
from diffusion4d.recon.deformation import HexPlaneDeformation, apply_local, apply_rigid, arap_loss, deform, knn_graph
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.losses import anisotropy_penalty, ssim
from diffusion4d.recon.optim import Adam
from diffusion4d.recon.rasterize import rasterize
from diffusion4d.recon.recon_config import DensifyConfig, ReconConfig

log = get_logger(__name__)


@dataclass
class Views:
    """Posed frames at the fitting resolution."""

    images: Tensor  # [F, H, W, 3] RGB over the background, in [0, 1]
    viewmats: Tensor  # [F, 4, 4] world-to-camera (OpenCV)
    Ks: Tensor  # [F, 3, 3]
    times: Tensor  # [F] normalised animation time
    width: int
    height: int

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: List[int]) -> "Views":
        i = torch.as_tensor(index, dtype=torch.long)
        return Views(self.images[i], self.viewmats[i], self.Ks[i], self.times[i], self.width, self.height)

    def downsampled(self, factor: int) -> "Views":
        """The same views ``factor`` x smaller: frames area-averaged (``ceil`` sizes), intrinsics scaled."""
        if factor <= 1:
            return self
        pooled = F.avg_pool2d(self.images.permute(0, 3, 1, 2), factor, ceil_mode=True).permute(0, 2, 3, 1)
        h, w = pooled.shape[1:3]
        Ks = self.Ks.clone()
        Ks[:, 0] *= w / self.width
        Ks[:, 1] *= h / self.height
        return Views(pooled.contiguous(), self.viewmats, Ks, self.times, w, h)

    @staticmethod
    def cat(parts: List["Views"]) -> "Views":
        return Views(
            torch.cat([p.images for p in parts]),
            torch.cat([p.viewmats for p in parts]),
            torch.cat([p.Ks for p in parts]),
            torch.cat([p.times for p in parts]),
            parts[0].width,
            parts[0].height,
        )


def load_views(clip_dir: Path, resolution: int, background: float, device: torch.device) -> Views:
    """Read a clip folder; downsample frames whose longer side exceeds ``resolution`` (0 = native;
    smaller clips are kept at their native size: upsampling adds cost, not information) and scale K."""
    clip = read_clip(clip_dir)
    rgb = torch.from_numpy(frames_to_float(clip.frames, background))  # [F, H, W, 3]
    h, w = rgb.shape[1:3]
    Ks = torch.as_tensor(clip.cameras.K, dtype=torch.float32)
    if resolution and max(h, w) > resolution:
        s = resolution / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        rgb = F.interpolate(rgb.permute(0, 3, 1, 2), size=(nh, nw), mode="area").permute(0, 2, 3, 1)
        Ks = Ks.clone()
        Ks[:, 0] *= nw / w
        Ks[:, 1] *= nh / h
        h, w = nh, nw
    viewmats = torch.as_tensor(np.linalg.inv(clip.cameras.c2w), dtype=torch.float32)
    times = torch.as_tensor(clip.cameras.times, dtype=torch.float32)
    return Views(rgb.contiguous().to(device), viewmats.to(device), Ks.to(device), times.to(device), w, h)


def photometric_loss(pred: Tensor, target: Tensor, cfg: ReconConfig, lpips_model: Optional[nn.Module] = None) -> Tensor:
    """``l1 * L1 + ssim * (1 - SSIM) [+ lpips * LPIPS]`` over images ``[B, H, W, 3]``."""
    loss = cfg.loss.l1 * (pred - target).abs().mean()
    if cfg.loss.ssim > 0:
        loss = loss + cfg.loss.ssim * (1.0 - ssim(pred, target))
    if lpips_model is not None and cfg.loss.lpips > 0:
        to = lambda x: x.permute(0, 3, 1, 2) * 2 - 1  # noqa: E731
        loss = loss + cfg.loss.lpips * lpips_model(to(pred), to(target)).mean()
    return loss


def shape_loss(model: GaussianModel, cfg: ReconConfig) -> Tensor:
    """The regulariser on the canonical Gaussians' shapes: ``loss.anisotropy`` x
    :func:`~diffusion4d.recon.losses.anisotropy_penalty` of their log-scales (a scalar)."""
    return cfg.loss.anisotropy * anisotropy_penalty(model.params["scales"], cfg.loss.max_anisotropy)


def render_gaussians(g: Dict[str, Tensor], views: Views, index, cfg: ReconConfig, sh_degree: int, background=None):
    """Rasterise activated Gaussians ``g`` into ``views[index]`` (a list of frame indices)."""
    i = torch.as_tensor(index, dtype=torch.long, device=views.viewmats.device)
    bg = cfg.background if background is None else background
    return rasterize(
        g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], views.viewmats[i], views.Ks[i],
        views.width, views.height, backend=cfg.backend, sh_degree=sh_degree, background=bg,
    )  # fmt: skip


def _pick_views(n: int, batch: int, gen: torch.Generator) -> List[int]:
    """``batch`` random view indices out of ``n`` (all of them, in order, when ``batch >= n``)."""
    return torch.randperm(n, generator=gen)[:batch].tolist() if batch < n else list(range(n))


def gaussian_optimizers(model: GaussianModel, cfg: ReconConfig, scale: float = 1.0) -> Dict[str, Adam]:
    """One Adam per parameter (the layout gsplat's strategies expect)."""
    return {
        name: Adam([p], lr=getattr(cfg.lr, name) * scale, eps=1e-15)
        for name, p in model.params.items()
    }


def make_strategy(densify: DensifyConfig):
    """gsplat's DefaultStrategy configured from ``densify`` (None when disabled or gsplat is absent)."""
    if not densify.enabled:
        return None
    try:
        from gsplat.strategy import DefaultStrategy
    except Exception:  # pragma: no cover - depends on the install
        log.warning("densification disabled: gsplat is not installed (pip install gsplat)")
        return None
    return DefaultStrategy(
        prune_opa=densify.prune_opa,
        grow_grad2d=densify.grow_grad2d,
        grow_scale3d=densify.grow_scale3d,
        prune_scale3d=densify.prune_scale3d,
        refine_start_iter=densify.start_iter,
        refine_stop_iter=densify.stop_iter,
        refine_every=densify.every,
        reset_every=densify.reset_every,
    )


def _decay_means_lr(optimizers, base_lr: float, step: int, total: int, final_ratio: float = 0.01) -> None:
    lr = base_lr * final_ratio ** (step / max(total, 1))
    for group in optimizers["means"].param_groups:
        group["lr"] = lr


def fit_static(
    model: GaussianModel,
    views: Views,
    cfg: ReconConfig,
    iterations: int,
    densify: Optional[DensifyConfig] = None,
    offsets_l1: Optional[float] = None,
    desc: str = "coarse",
    lpips_model: Optional[nn.Module] = None,
) -> int:
    """Fit ``model`` to ``views`` as a static scene. With ``offsets_l1`` set (freeze-time mode),
    every frame also gets a per-Gaussian offset ``[N, 3]`` penalised with that L1 weight;
    the offsets absorb inconsistencies between frames and are discarded afterwards."""
    optimizers = gaussian_optimizers(model, cfg)
    strategy = make_strategy(densify) if densify is not None and offsets_l1 is None else None
    state = None
    if strategy is not None:
        strategy.check_sanity(model.params, optimizers)
        state = strategy.initialize_state(scene_scale=1.0)
    offsets = opt_off = None
    if offsets_l1 is not None:
        offsets = nn.Parameter(torch.zeros(len(views), len(model), 3, device=views.images.device))
        opt_off = Adam([offsets], lr=cfg.lr.offsets)
    batch = max(1, min(cfg.coarse.batch_views, len(views)))
    gen = torch.Generator().manual_seed(cfg.seed)
    skipped = nonfinite = 0
    for step in progress(range(iterations), desc=desc):
        idx = _pick_views(len(views), batch, gen)
        g = model.activated()
        if offsets is None:
            img, _, info = render_gaussians(g, views, idx, cfg, model.sh_degree)
            if strategy is not None:
                strategy.step_pre_backward(model.params, optimizers, state, step, info)
            loss = photometric_loss(img, views.images[idx], cfg, lpips_model)
        else:
            loss = 0.0
            for i in idx:
                gi = dict(g, means=g["means"] + offsets[i])
                img, _, info = render_gaussians(gi, views, [i], cfg, model.sh_degree)
                loss = loss + photometric_loss(img, views.images[[i]], cfg, lpips_model) / len(idx)
                loss = loss + offsets_l1 * offsets[i].abs().sum(-1).mean() / len(idx)
        if cfg.loss.anisotropy > 0:
            loss = loss + shape_loss(model, cfg)
        if not loss.requires_grad:  # no Gaussian visible in any of these views: a constant image
            skipped += 1
            continue
        loss.backward()
        if not grads_finite([*optimizers.values(), *([opt_off] if opt_off is not None else [])]):
            for opt in [*optimizers.values(), *([opt_off] if opt_off is not None else [])]:
                opt.zero_grad(set_to_none=True)
            nonfinite += 1
            continue
        if strategy is not None:
            strategy.step_post_backward(model.params, optimizers, state, step, info, packed=False)
        _decay_means_lr(optimizers, cfg.lr.means, step, iterations)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if opt_off is not None:
            opt_off.step()
            opt_off.zero_grad(set_to_none=True)
    _warn_skipped(desc, skipped, iterations)
    _warn_nonfinite(desc, nonfinite, iterations)
    log.info("%s: %d steps, %d Gaussians", desc, iterations, len(model))
    return iterations


def grads_finite(optimizers) -> bool:
    """True when every gradient the ``optimizers`` would apply is finite. A step whose backward
    produced inf/NaN (seen on a real asset, AnimatedMorphCube, while tracking a late knot) would
    turn the parameters and Adam's moments into NaN for good; such a step is skipped instead."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    return False
    return True


def _warn_nonfinite(desc: str, count: int, iterations: int) -> None:
    if count:
        log.warning("%s: %d of %d steps skipped: their gradients were not finite", desc, count, iterations)


def _warn_skipped(desc: str, skipped: int, iterations: int) -> None:
    if skipped:
        log.warning("%s: %d of %d steps skipped: no Gaussian was visible in their views (nothing to fit)", desc, skipped, iterations)


def make_deformation(cfg: ReconConfig, num_frames: int) -> HexPlaneDeformation:
    """The fine-stage field from ``cfg.fine``; ``rigid_knots=-1`` puts a knot at each of ``num_frames`` frames."""
    f = cfg.fine
    knots = max(num_frames, 2) if f.rigid_knots == -1 else f.rigid_knots
    return HexPlaneDeformation(
        f.resolutions, f.time_resolution, f.features, f.hidden, bound=max(cfg.init.extent, 1.0),
        colour=f.colour, rigid_knots=knots, rigid_free_offsets=f.rigid_free_offsets,
    )  # fmt: skip


def curriculum_size(step: int, num_frames: int, iterations: int, fraction: float) -> int:
    """How many frames (in time order) the fine stage uses at ``step``: all of them when
    ``fraction`` is 0, else one more every ``fraction * iterations / num_frames`` steps."""
    ramp = fraction * iterations
    if ramp <= 0:
        return num_frames
    return min(num_frames, 1 + int(step * num_frames / ramp))


def _pyramid_loss(img: Tensor, target: Tensor, factor: int, cfg: ReconConfig) -> Tensor:
    """Photometric loss of images ``[B, H, W, 3]`` after ``factor`` x area downsampling of both."""
    if factor > 1:
        pool = lambda x: F.avg_pool2d(x.permute(0, 3, 1, 2), factor, ceil_mode=True).permute(0, 2, 3, 1)  # noqa: E731
        img, target = pool(img), pool(target)
    return photometric_loss(img, target, cfg)


#: rotation offsets (degrees) tried about each axis before a new knot is refined by gradient
TRACK_SEARCH_DEGREES = (-30.0, -20.0, -10.0, 10.0, 20.0, 30.0)


def num_visible(info: Dict) -> int:
    """Gaussians that project into at least one of the rendered views (``radii > 0``), from
    :func:`rasterize`'s ``info`` (either backend; radii ``[C, N, 2]`` or ``[C, N]``)."""
    seen = info["radii"] > 0
    if seen.dim() == 3:
        seen = seen.all(-1)
    return int(seen.any(0).sum())


def track_rigid_knot(model: GaussianModel, field: HexPlaneDeformation, frame: Views, cfg: ReconConfig) -> float:
    """Fit the rigid knot that frame ``frame`` (one view) ends on, everything else frozen.

    First a search: the knot's current rotation (a constant-velocity guess) and offsets of
    :data:`TRACK_SEARCH_DEGREES` about each axis, scored on blurred images; then
    ``fine.track_steps`` Adam steps per level of an image pyramid, coarsest first (a blurred
    image has a wide basin; textures alias at full resolution). Returns the final loss.

    A view in which no Gaussian is visible renders the constant background: nothing to fit
    (and no gradient). Then the constant-velocity guess is kept, with a warning, and NaN is
    returned (non-finite Gaussians, which are never visible either, raise FloatingPointError); search candidates that see nothing are never chosen, and a refinement step that
    moves everything out of view is undone (the knot keeps its last value that saw something)."""
    rigid = field.rigid
    t = float(frame.times[0])
    k = rigid.knot_index_after(t)
    if k == 0 or cfg.fine.track_steps <= 0:
        return float("nan")
    levels = [2**i for i in reversed(range(max(1, cfg.fine.track_levels)))]
    target = frame.images
    with torch.no_grad():
        local = apply_local(model.activated(), field, t)

        def score() -> Tuple[float, int]:
            img, _, info = render_gaussians(apply_rigid(local, rigid, t), frame, [0], cfg, model.sh_degree)
            return float(_pyramid_loss(img, target, levels[0], cfg)), num_visible(info)

        base = rigid.rotvecs[k - 1].clone()
        best_loss, visible = score()
        if visible == 0:
            moved = apply_rigid(local, rigid, t)
            if not all(bool(torch.isfinite(moved[key]).all()) for key in ("means", "quats", "scales", "opacities")):
                raise FloatingPointError(
                    f"non-finite Gaussians at t={t:.3f} (the fit diverged): nothing can be rendered or tracked"
                )
            log.warning(
                "tracking knot %d (t=%.3f): no Gaussian is visible in its view (%d Gaussians in the model; "
                "guess: %.0f degrees, translation %.2f); keeping the constant-velocity guess",
                k, t, len(model), math.degrees(float(base.norm())), float(rigid.translations[k - 1].norm()),
            )  # fmt: skip
            return float("nan")
        best = base
        for axis in range(3):
            for deg in TRACK_SEARCH_DEGREES:
                cand = base.clone()
                cand[axis] += math.radians(deg)
                rigid.rotvecs[k - 1] = cand
                loss, visible = score()
                if visible > 0 and loss < best_loss:
                    best, best_loss = cand, loss
        rigid.rotvecs[k - 1] = best
    mask = torch.zeros(rigid.knots - 1, 1, device=rigid.rotvecs.device)
    mask[k - 1] = 1.0
    opt = Adam([{"params": [rigid.rotvecs], "lr": cfg.lr.track_rotation}, {"params": [rigid.translations], "lr": cfg.lr.track_translation}])
    last_seen = (rigid.rotvecs.detach().clone(), rigid.translations.detach().clone())
    final = best_loss
    for factor in levels:
        for _ in range(cfg.fine.track_steps):
            img, _, info = render_gaussians(apply_rigid(local, rigid, t), frame, [0], cfg, model.sh_degree)
            if num_visible(info) == 0 or not img.requires_grad:
                with torch.no_grad():
                    rigid.rotvecs.copy_(last_seen[0])
                    rigid.translations.copy_(last_seen[1])
                log.warning("tracking knot %d (t=%.3f): a refinement step moved every Gaussian out of view; "
                            "keeping the knot's last value that saw them", k, t)  # fmt: skip
                return final
            last_seen = (rigid.rotvecs.detach().clone(), rigid.translations.detach().clone())
            loss = _pyramid_loss(img, target, factor, cfg)
            loss.backward()
            if not grads_finite([opt]):
                opt.zero_grad(set_to_none=True)
                continue
            rigid.rotvecs.grad.mul_(mask)
            rigid.translations.grad.mul_(mask)
            opt.step()
            opt.zero_grad(set_to_none=True)
            final = float(loss.detach())
    return final


def fit_deformation(
    model: GaussianModel,
    field: HexPlaneDeformation,
    views: Views,
    cfg: ReconConfig,
    iterations: int,
    arap_weight: float = 0.0,
    desc: str = "fine",
    lpips_model: Optional[nn.Module] = None,
) -> int:
    """Fit ``field`` (and, if ``fine.train_gaussians``, the canonical Gaussians) to frames whose
    times differ: frame i is rendered from camera i with the Gaussians deformed to time i.

    With ``fine.time_curriculum > 0`` frames enter in time order; each new frame's rigid knot
    starts at constant velocity from the fitted ones and is tracked (:func:`track_rigid_knot`),
    knots between it and the previous tracked one (times with no training frame) are set on the
    line between the two, and the newest frame is in every batch."""
    rigid = field.rigid
    groups = [
        {"params": list(field.planes.parameters()), "lr": cfg.lr.planes},
        {"params": list(field.trunk.parameters()) + list(field.heads.parameters()), "lr": cfg.lr.mlp},
    ]
    if rigid is not None:
        groups += [
            {"params": [rigid.rotvecs], "lr": cfg.lr.rigid_rotation},
            {"params": [rigid.translations], "lr": cfg.lr.rigid_translation},
        ]
        if int(rigid.fitted) == 1:  # a fresh motion turns about the opacity-weighted centre
            with torch.no_grad():
                w = model.activated()["opacities"].reshape(-1, 1)
                rigid.centre.copy_((model.means * w).sum(0) / w.sum().clamp_min(1e-8))
    opt_field = Adam(groups)
    optimizers = gaussian_optimizers(model, cfg, cfg.fine.gaussian_lr_scale) if cfg.fine.train_gaussians else {}
    neighbours = knn_graph(model.means.detach(), cfg.freeze_time.arap_k) if arap_weight > 0 else None
    order = sorted(range(len(views)), key=lambda i: float(views.times[i]))
    batch = max(1, min(cfg.fine.batch_views, len(views)))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    active = 0
    skipped = nonfinite = 0
    tracked = 0  # the last knot a training frame was tracked to
    for step in progress(range(iterations), desc=desc):
        size = curriculum_size(step, len(views), iterations, cfg.fine.time_curriculum)
        while size > active:
            active += 1
            if rigid is not None:
                newest = order[active - 1]
                k = rigid.knot_index_after(float(views.times[newest]))
                rigid.extrapolate(k)
                track_rigid_knot(model, field, views.subset([newest]), cfg)
                if k > tracked:
                    rigid.interpolate(tracked, k)  # knots of frames not trained on (held out) in between
                    tracked = k
        window = order[:active]
        idx = [window[j] for j in _pick_views(len(window), batch, gen)]
        if active < len(views) and window[-1] not in idx:
            idx[0] = window[-1]
        g = model.activated()
        loss = cfg.fine.tv_weight * field.total_variation()
        if cfg.fine.train_gaussians and cfg.loss.anisotropy > 0:
            loss = loss + shape_loss(model, cfg)
        if rigid is not None and cfg.fine.rigid_smoothness > 0:
            loss = loss + cfg.fine.rigid_smoothness * rigid.acceleration()
        for i in idx:
            gi = deform(g, field, float(views.times[i]))
            img, _, _ = render_gaussians(gi, views, [i], cfg, model.sh_degree)
            loss = loss + photometric_loss(img, views.images[[i]], cfg, lpips_model) / len(idx)
            if neighbours is not None:
                loss = loss + arap_weight * arap_loss(g["means"].detach(), gi["means"], neighbours) / len(idx)
        if not torch.is_tensor(loss) or not loss.requires_grad:  # nothing visible and no regulariser
            skipped += 1
            continue
        loss.backward()
        if not grads_finite([opt_field, *optimizers.values()]):
            for opt in [opt_field, *optimizers.values()]:
                opt.zero_grad(set_to_none=True)
            nonfinite += 1
            continue
        if optimizers:
            _decay_means_lr(optimizers, cfg.lr.means * cfg.fine.gaussian_lr_scale, step, iterations)
        for opt in [opt_field, *optimizers.values()]:
            opt.step()
            opt.zero_grad(set_to_none=True)
    if rigid is not None:
        rigid.extrapolate(rigid.knots - 1)  # knots past the last frame (when there are more knots than frames)
    _warn_skipped(desc, skipped, iterations)
    _warn_nonfinite(desc, nonfinite, iterations)
    log.info("%s: %d steps", desc, iterations)
    return iterations


#: the rigid knots are dropped only when the local offsets alone lower the trial's held-out loss
#: by this fraction: a clear loss, not noise (the pulsing cylinder's trial swung between +45 % for
#: the knots and -8 % against them from one coarse fit to the next; the morph cube's was -49 %)
RIGID_TRIAL_MARGIN = 0.2


def rigid_trial(
    model: GaussianModel, views: Views, cfg: ReconConfig, num_frames: int, lpips_model: Optional[nn.Module] = None
) -> Dict[str, Any]:
    """Whether the fine stage's rigid knots pay off on this asset, judged on frames not fitted.

    The earliest ``fine.rigid_trial_frames`` of the training frames (all of them by default),
    at a ``fine.rigid_trial_downsample`` times smaller size (cheap), are split alternately in
    time: the even ones are fitted for ``fine.rigid_trial_steps`` steps twice, from copies of
    ``model``, with the rigid knots (tracked as in :func:`fit_deformation`) and with the local
    offsets alone; the odd ones (times in between, as held-out frames are) score each fit.
    Judged on the earliest half only, the trial dropped the knots of the pulsing procedural
    cylinder, which needs them over its whole clip (25.5 dB held-out without, 28.1 with).

    A spinning or moving part needs the knots (local offsets cannot carry a large rotation); a
    morph or a bending skin does not, and there the knots explain part of the change by a rigid
    move that fits the fitted frames and drifts between them (measured on the real
    AnimatedMorphCube: see benchmarks/RESULTS.md). The knots are dropped only when the offsets
    alone lower the held-out loss by :data:`RIGID_TRIAL_MARGIN`. Returns
    ``{"rigid": loss, "local": loss, "fitted": n, "scored": m, "steps": s, "used": bool}``;
    neither ``model`` nor the global random state changes."""
    f = cfg.fine
    order = sorted(range(len(views)), key=lambda i: float(views.times[i]))
    n = min(len(views), max(3, math.ceil(len(views) * f.rigid_trial_frames)))
    window = order[:n]
    small = views.downsampled(f.rigid_trial_downsample)
    fitted, scored = small.subset(window[0::2]), small.subset(window[1::2])
    losses: Dict[str, float] = {}
    with torch.random.fork_rng(devices=[]):
        for name, knots in (("rigid", f.rigid_knots), ("local", 0)):
            trial_cfg = replace(cfg, fine=replace(f, rigid_knots=knots))
            trial_model = copy.deepcopy(model)
            field = make_deformation(trial_cfg, num_frames).to(views.images.device)
            fit_deformation(trial_model, field, fitted, trial_cfg, f.rigid_trial_steps, desc=f"rigid trial ({name})", lpips_model=lpips_model)
            with torch.no_grad():
                g = trial_model.activated()
                total = 0.0
                for i in range(len(scored)):
                    img, _, _ = render_gaussians(deform(g, field, float(scored.times[i])), scored, [i], cfg, trial_model.sh_degree)
                    total += float(photometric_loss(img, scored.images[[i]], cfg))
            losses[name] = total / max(1, len(scored))
    dropped = losses["local"] <= losses["rigid"] * (1.0 - RIGID_TRIAL_MARGIN)
    used = not dropped
    log.info(
        "rigid trial (fit %d frames, %d steps; scored on %d between them): loss %.4f with rigid knots, "
        "%.4f with local offsets alone -> %s",
        len(fitted), f.rigid_trial_steps, len(scored), losses["rigid"], losses["local"], "rigid knots" if used else "no rigid knots",
    )  # fmt: skip
    return {**losses, "fitted": len(fitted), "scored": len(scored), "steps": f.rigid_trial_steps, "used": used}


@torch.no_grad()
def render_frames(
    model: GaussianModel,
    field: Optional[nn.Module],
    viewmats: Tensor,
    Ks: Tensor,
    times: Tensor,
    width: int,
    height: int,
    cfg: ReconConfig,
    background: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """Render frame i with camera i at time i; returns (premultiplied colours ``[F,H,W,3]``, alphas ``[F,H,W,1]``).

    Frames sharing a time (a turntable, a static field) are deformed once and rasterised together."""
    g = model.activated()
    n = viewmats.shape[0]
    cols = torch.empty(n, height, width, 3, device=viewmats.device)
    alphas = torch.empty(n, height, width, 1, device=viewmats.device)
    groups: Dict[float, List[int]] = {}
    for i, t in enumerate(times.tolist()):
        groups.setdefault(0.0 if field is None else t, []).append(i)
    for t, index in groups.items():
        gi = deform(g, field, t) if field is not None else g
        for start in range(0, len(index), 8):  # bounded memory per call
            j = torch.as_tensor(index[start : start + 8], device=viewmats.device)
            img, alpha, _ = rasterize(
                gi["means"], gi["quats"], gi["scales"], gi["opacities"], gi["sh"], viewmats[j], Ks[j],
                width, height, backend=cfg.backend, sh_degree=model.sh_degree, background=background,
            )  # fmt: skip
            cols[j] = img.clamp(0, 1).to(cols.dtype)
            alphas[j] = alpha.to(alphas.dtype)
    return cols, alphas
