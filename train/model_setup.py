"""Building the trainable UNet and the frozen encoders from a :class:`~diffusion4d.train.train_config.ModelConfig`.

``model.base = "tiny"`` builds a small random ModelScope-layout ``UNet3DConditionModel`` (the
same code path as a real base, through :meth:`UNet4DConditionModel.from_base_model`); any other
value is a ModelScope-T2V diffusers checkpoint (hub id or local folder) or a Diffusion4D
checkpoint folder: stage 2 (4D fine-tuning) starts from a stage-1 (3D prior) checkpoint, whose
UNet then also becomes the frozen prior of Eq. 3 (``model.prior``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from diffusion4d.errors import UserError
from diffusion4d.models import UNet4DConditionModel, load_text_stack


PRIOR_FOLDER = "prior_unet"  # <output_dir>/prior_unet: the frozen stage-1 UNet, hard-linked into every stage-2 checkpoint


@dataclass
class Components:
    unet: UNet4DConditionModel
    vae: Any  # AutoencoderKL or None (pixel space)
    tokenizer: Any
    text_encoder: Any
    noise_scheduler: Any  # DDPMScheduler (training)
    prior_source: Optional[Path] = None  # UNet folder of the frozen 3D prior (stage 2), or None


def stage1_checkpoint_unet(folder: Union[str, Path]) -> Optional[Path]:
    """``<folder>/unet`` when ``folder`` is a Diffusion4D checkpoint written by training stage 1
    (``training_config.yaml`` with ``stage: prior3d``), else None."""
    from diffusion4d.models.checkpoint import read_training_config

    folder = Path(folder)
    if not (folder / "model_index.json").is_file() or not (folder / "unet" / "config.json").is_file():
        return None
    try:
        cfg = read_training_config(folder) or {}
    except Exception:  # an unreadable config: not a stage-1 checkpoint we can vouch for
        return None
    return folder / "unet" if cfg.get("stage") == "prior3d" else None


def resolve_prior(model_cfg) -> Optional[Path]:
    """The UNet folder of the frozen 3D prior named by ``model.prior`` (see :class:`ModelConfig`)."""
    choice = str(model_cfg.prior)
    if choice == "none":
        return None
    if choice == "auto":
        return stage1_checkpoint_unet(model_cfg.base) if model_cfg.base != "tiny" else None
    unet_dir = stage1_checkpoint_unet(choice)
    if unet_dir is None:
        raise UserError(
            f"model.prior={choice!r} is not a stage-1 checkpoint (a checkpoint-N folder of a stage=prior3d run, "
            "with model_index.json, unet/ and training_config.yaml); use auto, none or such a folder"
        )
    return unet_dir


def freeze_prior(unet_dir: Path, destination: Path) -> Path:
    """Copy the prior UNet folder ``unet_dir`` to ``destination`` once (atomically); an existing
    copy with the same files and sizes is kept (a resumed run)."""
    unet_dir, destination = Path(unet_dir), Path(destination)
    files = sorted(p for p in unet_dir.iterdir() if p.is_file())
    if destination.is_dir() and all((destination / p.name).is_file() and (destination / p.name).stat().st_size == p.stat().st_size for p in files):
        return destination
    tmp = destination.with_name(f".{destination.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        for p in files:
            shutil.copy2(p, tmp / p.name)
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination


def _new_options(model_cfg, num_frames: int) -> dict:
    options = dict(
        num_frames=num_frames,
        motion_conditioning=model_cfg.motion_conditioning,
        camera_conditioning=model_cfg.camera_conditioning,
        frame_time_conditioning=model_cfg.frame_time_conditioning,
        text_pooled_conditioning=model_cfg.text_pooled_conditioning,
        static_conditioning=model_cfg.static_conditioning,
        image_conditioning=model_cfg.image_conditioning,
    )
    if model_cfg.motion_scale is not None:
        options["motion_scale"] = float(model_cfg.motion_scale)
    if model_cfg.frame_time_motion_reference == "data":
        raise ValueError("model.frame_time_motion_reference=data: resolve it from the training data first "
                         "(train/orbit_dataset.py data_motion_reference; the trainer does this when it starts)")
    if model_cfg.frame_time_motion_reference is not None:
        options["frame_time_motion_reference"] = float(model_cfg.frame_time_motion_reference)
        options["frame_time_motion_anchor"] = model_cfg.frame_time_motion_anchor
    return options


def set_temporal_dropout(unet: torch.nn.Module, p: float) -> int:
    """Set the dropout probability of every temporal convolution layer (diffusers' ``TemporalConvLayer``,
    0.1 in the ModelScope architecture) to ``p``; returns how many dropout modules changed."""
    from diffusers.models.resnet import TemporalConvLayer

    changed = 0
    for layer in unet.modules():
        if isinstance(layer, TemporalConvLayer):
            for sub in layer.modules():
                if isinstance(sub, torch.nn.Dropout):
                    sub.p = float(p)
                    changed += 1
    return changed


def tiny_base_unet(model_cfg, latent_channels: int, sample_size: int, cross_attention_dim: int):
    """A small random ModelScope-layout UNet3DConditionModel (2 levels) for CPU runs and tests."""
    from diffusers import UNet3DConditionModel

    widths = tuple(model_cfg.tiny_block_out_channels)
    down = tuple(model_cfg.tiny_down_block_types)
    valid = {"CrossAttnDownBlock3D", "DownBlock3D"}
    if len(down) != len(widths) or not set(down) <= valid:
        raise UserError(
            f"model.tiny_down_block_types must list one of {sorted(valid)} per width in "
            f"model.tiny_block_out_channels ({len(widths)}), got {list(down)}"
        )
    return UNet3DConditionModel(
        sample_size=sample_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=tuple(b.replace("Down", "Up") for b in reversed(down)),
        block_out_channels=widths,
        layers_per_block=model_cfg.tiny_layers_per_block,
        norm_num_groups=min(8, widths[0]),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=model_cfg.tiny_attention_head_dim,
    )


def load_vae(model_cfg):
    """The frozen VAE of ``model.vae``: ``none`` (pixel space) -> None; ``base`` -> the base
    checkpoint's ``vae/``; a folder -> an ``AutoencoderKL`` saved there (for example one trained by
    ``diffusion4d train-autoencoder``)."""
    from diffusers import AutoencoderKL

    if model_cfg.vae == "none":
        return None
    if model_cfg.vae == "base":
        if model_cfg.base == "tiny":
            raise UserError("model.vae=base needs a real model.base checkpoint; the tiny preset runs in pixel space (vae: none) or with model.vae=<autoencoder folder>")
        source, kwargs = model_cfg.base, {"subfolder": "vae"}
    else:
        if not (Path(model_cfg.vae) / "config.json").is_file():
            raise UserError(f"model.vae must be 'none', 'base' or an AutoencoderKL folder (with config.json); {model_cfg.vae!r} is none of these")
        source, kwargs = model_cfg.vae, {}
    try:
        vae = AutoencoderKL.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the VAE from {source!r} ({type(err).__name__}); pass a local checkpoint folder") from None
    return vae.requires_grad_(False).eval()


def build_components(model_cfg, data_cfg) -> Components:
    from diffusers import DDPMScheduler

    tiny = model_cfg.base == "tiny"
    if model_cfg.text_encoder == "base":
        if tiny:
            raise UserError("model.text_encoder=base needs a real model.base checkpoint (tiny has no text encoder)")
        tokenizer, text_encoder = load_text_stack(model_cfg.base)
    else:
        tokenizer, text_encoder = load_text_stack(model_cfg.text_encoder)
    vae = load_vae(model_cfg)
    options = _new_options(model_cfg, data_cfg.num_frames)
    if tiny:
        channels = 3 if vae is None else vae.config.latent_channels
        factor = 1 if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)
        if data_cfg.resolution % factor:
            raise UserError(f"data.resolution {data_cfg.resolution} is not a multiple of the VAE's downsampling {factor}")
        size = data_cfg.resolution // factor
        base = tiny_base_unet(model_cfg, channels, size, text_encoder.config.hidden_size)
        unet = UNet4DConditionModel.from_base_model(base, **options)
    else:
        unet = UNet4DConditionModel.from_base(model_cfg.base, **options)
        if unet.config.cross_attention_dim != text_encoder.config.hidden_size:
            raise UserError(
                f"text encoder width {text_encoder.config.hidden_size} != UNet cross_attention_dim "
                f"{unet.config.cross_attention_dim}: use model.text_encoder=base"
            )
    if model_cfg.temporal_dropout is not None:
        set_temporal_dropout(unet, model_cfg.temporal_dropout)
    noise_scheduler = DDPMScheduler(
        num_train_timesteps=model_cfg.num_train_timesteps,
        beta_schedule=model_cfg.beta_schedule,
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=model_cfg.prediction_type,
        timestep_spacing=model_cfg.timestep_spacing,
        clip_sample=False,
    )
    prior = resolve_prior(model_cfg)
    return Components(unet=unet, vae=vae, tokenizer=tokenizer, text_encoder=text_encoder, noise_scheduler=noise_scheduler,
                      prior_source=prior)


def make_optimizer(params, optim_cfg, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW (or bitsandbytes' 8-bit AdamW) with the config's settings.

    ``fused=True`` runs torch's fused AdamW kernel (one kernel over every tensor instead of a
    Python loop over the hundreds of small ones of the tiny preset; benchmarks/RESULTS.md has the step
    times); the trainer asks for it with ``optim.fused=true`` on a plain (non-DeepSpeed) CPU or CUDA
    run. It computes the same update as the loop up to float rounding (tests/test_optimizer.py).
    """
    kwargs = dict(
        lr=optim_cfg.lr,
        betas=(optim_cfg.adam_beta1, optim_cfg.adam_beta2),
        weight_decay=optim_cfg.weight_decay,
        eps=optim_cfg.adam_epsilon,
    )
    if optim_cfg.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UserError("optim.use_8bit_adam=true needs bitsandbytes: pip install bitsandbytes (CUDA only)") from None
        return bnb.optim.AdamW8bit(params, **kwargs)
    if fused:
        kwargs["fused"] = True
    return torch.optim.AdamW(params, **kwargs)
