"""Validation sampling during training, through the inference pipeline
(:class:`~diffusion4d.pipelines.Diffusion4DPipeline`), so ``validation.guidance_scale`` is the
w1 of Eq. 3 exactly as ``diffusion4d generate --guidance W1 0`` reads it
(``eps_c + w1 (eps_c - eps_uncond)``); videos are written as mp4 (imageio-ffmpeg)."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import torch


@torch.no_grad()
def sample_validation(
    unet,
    vae,
    text_encoder,
    tokenizer,
    scheduler_config: Dict,
    prompts: Sequence[str],
    motion: Sequence[float],
    items: List[Dict[str, Any]],
    *,
    num_inference_steps: int = 10,
    guidance_scale: float = 3.0,
    seed: int = 0,
) -> torch.Tensor:
    """One video per prompt -> frames ``[N, F, 3, H, W]`` in [0, 1].

    ``items`` are dataset samples (pixels): their frame count and size set the video's, their
    static orbit conditions a static-3D model, their first frame an image model; ``motion[i]``
    (NaN: null) conditions a motion model. No prior term (w2 = 0): the prior is not trained yet
    in stage 1 and is a separate model in stage 2.
    """
    from diffusers import DDIMScheduler

    from diffusion4d.pipelines import Diffusion4DPipeline

    pipe = Diffusion4DPipeline(
        unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=DDIMScheduler.from_config(scheduler_config), vae=vae
    )
    pipe.set_progress_bar_config(disable=True)
    cfg = unet.config
    videos = []
    for i, (prompt, m, item) in enumerate(zip(prompts, motion, items)):
        num_frames, _, height, width = item["frames"].shape
        kwargs: Dict[str, Any] = {}
        if cfg.get("static_conditioning", False):
            kwargs["static_orbit"] = item["static_frames"]
        if cfg.get("image_conditioning", False):
            kwargs["image"] = item["frames"][0]
        use_motion = cfg.get("motion_conditioning", False) and m is not None and math.isfinite(m)
        out = pipe(
            prompt=prompt, motion_magnitude=float(m) if use_motion else None, num_frames=num_frames, height=height, width=width,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, prior_guidance_scale=0.0,
            generator=torch.Generator().manual_seed(seed + i), output_type="pt", **kwargs,
        )
        videos.append(out.frames[0].float().cpu())
    return torch.stack(videos)
