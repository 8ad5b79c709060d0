"""Validation sampling during training: a plain DDIM loop with text classifier-free guidance,
decoded and written as mp4 (imageio-ffmpeg). The inference pipeline (``diffusion4d.pipelines``)
is the full-featured sampler; this loop only watches training progress."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch


@torch.no_grad()
def ddim_sample(
    unet,
    scheduler_config: Dict,
    text_embeds: torch.Tensor,
    uncond_embeds: torch.Tensor,
    shape: tuple,
    *,
    num_inference_steps: int = 10,
    guidance_scale: float = 3.0,
    generator: Optional[torch.Generator] = None,
    **conditions,
) -> torch.Tensor:
    """Sample latents ``shape`` = ``[B, C, F, h, w]``.

    ``conditions`` (motion_magnitude, camera_c2w, static_latents, image_latents) go to both
    branches; only the text is dropped in the unconditional branch.
    """
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(num_inference_steps)
    device, dtype = text_embeds.device, unet.dtype
    latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * scheduler.init_noise_sigma
    use_cfg = guidance_scale != 1.0
    for t in scheduler.timesteps:
        x = latents.to(dtype)
        if use_cfg:
            doubled = {k: (torch.cat([v, v]) if torch.is_tensor(v) else v) for k, v in conditions.items()}
            out = unet(torch.cat([x, x]), t, torch.cat([uncond_embeds, text_embeds]).to(dtype), **doubled).sample.float()
            uncond, cond = out.chunk(2)
            pred = uncond + guidance_scale * (cond - uncond)
        else:
            pred = unet(x, t, text_embeds.to(dtype), **conditions).sample.float()
        latents = scheduler.step(pred, t, latents).prev_sample
    return latents


def write_mp4(frames: torch.Tensor, path: Path, fps: int = 8) -> Path:
    """Frames ``[F, 3, H, W]`` in [0, 1] -> H.264 mp4 (:func:`diffusion4d.io.write_video`)."""
    from diffusion4d.io.video import write_video

    arr = (frames.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return write_video(path, arr, fps=fps)
