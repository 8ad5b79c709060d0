"""A small image autoencoder (diffusers ``AutoencoderKL``) trained on curated renders.

The real presets use the base checkpoint's VAE. A model trained from scratch on a CPU (the tiny
preset, the demo) can use a latent space too: this module fits an ``AutoencoderKL`` at tiny width
to the frames of a curated dataset, so that the diffusion model works on ``4 x H/4 x W/4`` latents
and its samples decode to full-size frames (64 px renders -> 16 x 16 latents). The trained folder
is a regular diffusers model folder; the trainer loads it with ``model.vae=<folder>``.

Command: ``diffusion4d train-autoencoder --data CURATED --output DIR [key=value ...]``
(:class:`diffusion4d.train.train_config.AutoencoderConfig`). Writes ``DIR/config.json`` +
``DIR/diffusion_pytorch_model.safetensors`` (atomically: the folder appears complete or not at
all) and ``DIR/autoencoder_summary.json`` (reconstruction PSNR on held-out clips, the latent scale).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from diffusion4d.errors import UserError
from diffusion4d.io import frames_to_float, read_clip
from diffusion4d.logging_utils import get_logger, progress

COMMAND = "train-autoencoder"
HELP = "fit a small AutoencoderKL to curated renders (a latent space for models trained from scratch)"
SUMMARY_FILE = "autoencoder_summary.json"

log = get_logger(__name__)


def collect_frames(root: Path, resolution: int) -> Tuple[np.ndarray, List[str]]:
    """Every frame of every clip under ``root/<uid>/<mode>/`` -> ``[N, 3, R, R]`` float32 in [0, 1]
    (composited over white, resized to ``resolution``) and the uid of each frame."""
    frames, uids = [], []
    clip_dirs = sorted(p.parent for p in Path(root).glob("*/*/cameras.json"))
    if not clip_dirs:
        raise UserError(f"no curated clips under {root} (expected <uid>/<mode>/cameras.json)")
    for clip_dir in clip_dirs:
        rgb = frames_to_float(read_clip(clip_dir).frames)  # [F, H, W, 3]
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2)
        if x.shape[-1] != resolution or x.shape[-2] != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
        frames.append(x.clamp(0, 1).numpy())
        uids += [clip_dir.parent.name] * len(x)
    return np.concatenate(frames), uids


def build_autoencoder(cfg) -> "torch.nn.Module":
    """A randomly initialised ``AutoencoderKL``: ``len(block_out_channels) - 1`` downsamplings."""
    from diffusers import AutoencoderKL

    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=cfg.resolution,
        mid_block_add_attention=cfg.mid_block_attention,
    )


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, foreground_weight: float = 0.0) -> torch.Tensor:
    """``MSE + 0.5 L1`` between ``recon`` and ``x`` ``[B, 3, H, W]`` (in [0, 1], over white).

    With ``foreground_weight = k > 0`` each pixel's error is weighted by ``1 + k * object`` (the
    project's silhouette of ``x``), the weights rescaled to mean 1 over the batch, so that small
    objects (5-30 % of a demo frame) weigh more. ``k = 0`` is the plain unweighted mean. On the
    demo's data more steps kept colours better than any weight (docs/training.md).
    """
    err = (recon - x) ** 2 + 0.5 * (recon - x).abs()
    if foreground_weight == 0.0:
        return err.mean()
    from diffusion4d.metrics import silhouette

    w = 1.0 + foreground_weight * silhouette(x).to(err.dtype)[:, None]  # [B, 1, H, W]
    return (err * (w / w.mean())).mean()


def colour_fidelity(original: torch.Tensor, recon: torch.Tensor, uids: List[str]) -> dict:
    """How well the autoencoder keeps each clip's object colour: per uid, the RGB distance between
    the mean foreground colours (:func:`diffusion4d.metrics.foreground_colour`) of its frames and
    of their round trip. ``original`` / ``recon`` ``[N, 3, H, W]``, ``uids`` ``[N]``.

    Returns ``{"mean": float, "max": float, "worst": uid, "per_uid": {uid: distance}}`` (uids whose
    original or round trip has no object pixel are left out; empty -> mean / max None)."""
    from diffusion4d.metrics import foreground_colour

    per_uid = {}
    for uid in sorted(set(uids)):
        idx = torch.tensor([i for i, u in enumerate(uids) if u == uid])
        a, b = foreground_colour(original[idx].double()), foreground_colour(recon[idx].clamp(0, 1).double())
        if a is not None and b is not None:
            per_uid[uid] = round(float(torch.linalg.vector_norm(a - b)), 4)
    if not per_uid:
        return {"mean": None, "max": None, "worst": None, "per_uid": {}}
    worst = max(per_uid, key=per_uid.get)
    return {"mean": round(sum(per_uid.values()) / len(per_uid), 4), "max": per_uid[worst], "worst": worst, "per_uid": per_uid}


def latent_whitening(z: torch.Tensor, floor: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ZCA whitening of latent vectors ``z`` ``[N, C]``: ``(A, mean, eigenvalues)`` such that
    ``A @ (z - mean)`` has identity covariance. ``A = V diag(lambda^-1/2) V^T`` from the eigen-decomposition
    of the covariance (eigenvalues below ``floor x`` the largest are raised to it); ``eigenvalues`` ascending."""
    z = z.double()
    mean = z.mean(0)
    eigenvalues, vectors = torch.linalg.eigh(torch.cov((z - mean).T))
    clamped = eigenvalues.clamp(min=float(eigenvalues.max()) * floor)
    return vectors @ torch.diag(clamped.rsqrt()) @ vectors.T, mean, eigenvalues


@torch.no_grad()
def fold_latent_transform(vae, a: torch.Tensor, mean: torch.Tensor) -> None:
    """Make ``vae`` encode to ``z' = a (z - mean)`` and decode from it (``z = a^-1 z' + mean``), in place,
    by rewriting its 1x1 ``quant_conv`` (posterior mean rows) and ``post_quant_conv``. The posterior mode
    round trip is unchanged up to float rounding. A diagonal posterior cannot carry a rotated variance:
    each new log-variance is the mean of the old ones plus ``log (a a^T)_ii``, exact when the old
    variances are equal (this project encodes with the mode only)."""
    c = a.shape[0]
    if vae.quant_conv is None or vae.post_quant_conv is None:
        raise ValueError("latent whitening needs the autoencoder's quant_conv and post_quant_conv (use_quant_conv)")
    a64, mean64 = a.double(), mean.double()
    q_w, q_b = vae.quant_conv.weight.double(), vae.quant_conv.bias.double()  # [2C, C_in, 1, 1], [2C]
    w_mean = q_w[:c, :, 0, 0]
    q_w[:c, :, 0, 0] = a64 @ w_mean
    q_b[:c] = a64 @ (q_b[:c] - mean64)
    q_w[c:] = q_w[c:].mean(0, keepdim=True).expand(c, -1, -1, -1).clone()
    q_b[c:] = q_b[c:].mean() + torch.log(torch.diag(a64 @ a64.T))
    p_w, p_b = vae.post_quant_conv.weight.double(), vae.post_quant_conv.bias.double()  # [C, C, 1, 1], [C]
    w_post = p_w[:, :, 0, 0]
    p_b = p_b + w_post @ mean64
    p_w[:, :, 0, 0] = w_post @ torch.linalg.inv(a64)
    for conv, w, b in ((vae.quant_conv, q_w, q_b), (vae.post_quant_conv, p_w, p_b)):
        conv.weight.copy_(w.to(conv.weight.dtype))
        conv.bias.copy_(b.to(conv.bias.dtype))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    from diffusion4d.metrics import psnr_per_frame

    return float(psnr_per_frame(a.clamp(0, 1), b.clamp(0, 1)).clamp(max=100).mean())


def train_autoencoder(cfg, data_root: str, output: str) -> dict:
    """Fit the autoencoder; returns the summary written next to it.

    Clips of ``cfg.holdout_every``-th uid (sorted) are held out for the reported PSNR. The latent
    ``scaling_factor`` is set so that the encoded training frames have unit standard deviation.
    """
    torch.manual_seed(cfg.seed)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    out = Path(output)
    if (out / "config.json").is_file() and (out / SUMMARY_FILE).is_file():
        log.info("autoencoder already trained in %s (delete the folder to retrain)", out)
        return json.loads((out / SUMMARY_FILE).read_text())
    frames, uids = collect_frames(Path(data_root), cfg.resolution)
    names = sorted(set(uids))
    held = {u for i, u in enumerate(names) if cfg.holdout_every > 0 and i % cfg.holdout_every == cfg.holdout_every - 1}
    mask = np.array([u in held for u in uids])
    train_x, val_x = torch.from_numpy(frames[~mask]), torch.from_numpy(frames[mask])  # val_x may be empty (holdout_every=0)
    log.info("autoencoder: %d training frames from %d assets, %d held out", len(train_x), len(names) - len(held), int(mask.sum()))
    vae = build_autoencoder(cfg)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    from diffusers.optimization import get_scheduler

    schedule = get_scheduler(cfg.lr_scheduler, opt, num_warmup_steps=0, num_training_steps=cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    start = time.perf_counter()
    vae.train()
    for step in progress(range(cfg.steps), desc="autoencoder", unit="step"):
        idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
        x = train_x[idx]
        if torch.rand((), generator=gen) < 0.5:  # orbits are symmetric under a mirror
            x = x.flip(-1)
        dist = vae.encode(x * 2 - 1).latent_dist
        recon = (vae.decode(dist.sample(gen)).sample + 1) / 2
        kl = dist.kl().mean() / (x[0].numel())
        loss = reconstruction_loss(recon, x, cfg.foreground_weight) + cfg.kl_weight * kl
        if not torch.isfinite(loss):
            raise UserError(f"autoencoder training diverged at step {step} (loss {loss.item()}); lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        schedule.step()
    vae.eval()
    with torch.no_grad():
        whitening = None
        if cfg.whiten_latents:  # statistics over every latent cell of every training frame
            z = torch.cat([vae.encode(c * 2 - 1).latent_dist.mode() for c in train_x.split(64)])
            a, mean, eigenvalues = latent_whitening(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]))
            fold_latent_transform(vae, a, mean)
            whitening = [float(e) for e in eigenvalues]
        # every training frame encoded once: the scale reads the first 512 latents, the PSNR the first 256 round trips,
        # the colour check all of them
        train_z = [vae.encode(c * 2 - 1).latent_dist.mode() for c in train_x.split(64)]
        scale = 1.0 / max(float(torch.cat(train_z)[:512].std()), 1e-6)
        train_round = torch.cat([(vae.decode(z).sample + 1) / 2 for z in train_z])

        def round_trip(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([(vae.decode(vae.encode(c * 2 - 1).latent_dist.mode()).sample + 1) / 2 for c in x.split(64)])

        val_rec, train_rec = (round_trip(val_x) if len(val_x) else None), train_round[:256]
        train_uids = [u for u, held_out in zip(uids, mask) if not held_out]
        fidelity = colour_fidelity(train_x, train_round, train_uids)
    vae.register_to_config(scaling_factor=scale)
    summary = {
        "steps": cfg.steps,
        "seconds": round(time.perf_counter() - start, 2),
        "resolution": cfg.resolution,
        "latent": [cfg.latent_channels, cfg.resolution // 2 ** (len(cfg.block_out_channels) - 1)],
        "scaling_factor": scale,
        "psnr_train": _psnr(train_rec, train_x[:256]),
        "psnr_heldout": _psnr(val_rec, val_x) if val_rec is not None else None,  # None: nothing held out
        "colour_error_train": fidelity["mean"],  # RGB distance of mean object colours, per training clip folder
        "colour_error_train_max": fidelity["max"],
        "colour_error_worst": fidelity["worst"],
        "colour_error_per_uid": fidelity["per_uid"],
        "latent_eigenvalues": whitening,  # of the latent covariance before whitening (None: not whitened)
        "heldout_assets": sorted(held),
        "parameters": sum(p.numel() for p in vae.parameters()),
    }
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    vae.save_pretrained(tmp)
    (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    log.info("autoencoder: %.1f s, PSNR train %.2f dB, held-out %s dB, object colour error mean %s / max %s (%s), scale %.3f",
             summary["seconds"], summary["psnr_train"],
             "none" if summary["psnr_heldout"] is None else f"{summary['psnr_heldout']:.2f}", fidelity["mean"], fidelity["max"],
             fidelity["worst"], scale)  # fmt: skip
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="curated dataset (diffusion4d curate output)")
    parser.add_argument("--output", required=True, metavar="DIR", help="model folder to write (diffusers AutoencoderKL)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="AutoencoderConfig overrides (steps=600 resolution=64 ...)")


def run(args: argparse.Namespace) -> int:
    from diffusion4d.config import ConfigError, load_config
    from diffusion4d.train.train_config import AutoencoderConfig

    try:
        cfg = load_config(AutoencoderConfig, None, args.overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    if cfg.resolution % 2 ** (len(cfg.block_out_channels) - 1):
        raise UserError(f"resolution {cfg.resolution} is not a multiple of the downsampling 2^{len(cfg.block_out_channels) - 1}")
    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such folder")
    summary = train_autoencoder(cfg, args.data, args.output)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("heldout_assets", "colour_error_per_uid")}))
    return 0 if math.isfinite(summary["psnr_train"]) else 1
