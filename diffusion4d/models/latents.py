"""Frames <-> video latents, with a VAE (``AutoencoderKL``) or in pixel space (``vae=None``).

Layouts: frames ``[B, F, 3, H, W]`` in [0, 1] (RGB composited over white, the project-wide
convention); latents ``[B, C, F, h, w]`` (diffusers video layout). Pixel space (the tiny CPU
preset) maps x -> 2x - 1, so C = 3 and h, w = H, W.
"""

from __future__ import annotations

from typing import Optional

import torch


def _scaling(vae) -> float:
    return float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)


def encode_frames(
    vae, frames: torch.Tensor, *, sample: bool = False, generator: Optional[torch.Generator] = None, chunk_size: int = 16
) -> torch.Tensor:
    """Encode frames ``[B, F, 3, H, W]`` in [0, 1] -> latents ``[B, C, F, h, w]``.

    Args:
        vae: an ``AutoencoderKL`` (latents multiplied by its ``scaling_factor``) or None (pixel space).
        frames: RGB in [0, 1].
        sample: draw from the VAE posterior instead of taking its mode.
        generator: RNG for ``sample=True``.
        chunk_size: frames encoded per VAE call (memory bound).
    """
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames must be [B, F, 3, H, W], got {tuple(frames.shape)}")
    batch, num_frames = frames.shape[:2]
    x = frames * 2.0 - 1.0
    if vae is None:
        return x.permute(0, 2, 1, 3, 4).contiguous()
    x = x.reshape(batch * num_frames, *x.shape[2:]).to(device=vae.device, dtype=vae.dtype)
    outs = []
    for chunk in x.split(chunk_size):
        dist = vae.encode(chunk).latent_dist
        outs.append(dist.sample(generator) if sample else dist.mode())
    z = torch.cat(outs) * _scaling(vae)
    return z.reshape(batch, num_frames, *z.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


def decode_latents(vae, latents: torch.Tensor, *, chunk_size: int = 16) -> torch.Tensor:
    """Decode latents ``[B, C, F, h, w]`` -> frames ``[B, F, 3, H, W]`` in [0, 1] (clamped)."""
    if latents.dim() != 5:
        raise ValueError(f"latents must be [B, C, F, h, w], got {tuple(latents.shape)}")
    batch, _, num_frames = latents.shape[:3]
    z = latents.permute(0, 2, 1, 3, 4)  # [B, F, C, h, w]
    if vae is None:
        x = z
    else:
        z = z.reshape(batch * num_frames, *z.shape[2:]).to(device=vae.device, dtype=vae.dtype) / _scaling(vae)
        x = torch.cat([vae.decode(c).sample for c in z.split(chunk_size)])
        x = x.reshape(batch, num_frames, *x.shape[1:])
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)
