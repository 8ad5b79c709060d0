"""Conditioning embeddings of the 4D-aware UNet: motion magnitude, per-frame camera and frame time.

Each ends in a zero-initialised linear layer, so a freshly added embedding outputs exactly 0
and the fine-tuning starts from the base video model's behaviour (ControlNet-style).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from diffusers.models.embeddings import get_timestep_embedding


def _zero_linear(dim_in: int, dim_out: int) -> nn.Linear:
    layer = nn.Linear(dim_in, dim_out)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class _ScalarEmbedding(nn.Module):
    """A scalar per row -> sinusoidal features of ``value * scale`` (the timestep features) -> Linear ->
    SiLU -> Linear (zero-init) -> ``[N, D]``."""

    def __init__(self, embed_dim: int, feature_dim: int, scale: float):
        super().__init__()
        self.feature_dim = feature_dim
        self.scale = scale
        self.linear_1 = nn.Linear(feature_dim, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = _zero_linear(embed_dim, embed_dim)

    def embed(self, values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``values`` ``[N]`` -> ``[N, D]``."""
        features = get_timestep_embedding(values * self.scale, self.feature_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        return self.linear_2(self.act(self.linear_1(features.to(dtype))))


class MotionMagnitudeEmbedding(_ScalarEmbedding):
    """m -> sinusoidal features -> Linear -> SiLU -> Linear (zero-init) -> ``[B, D]``.

    ``m`` is the mean-form motion magnitude of :mod:`diffusion4d.motion` (typically 0..0.1);
    it is multiplied by ``scale`` before the sinusoidal features so that the frequencies resolve
    it, as timesteps 0..1000 are. Entries that are NaN (condition dropped, classifier-free
    guidance) and ``m=None`` use ``null_embedding``, a learned vector initialised to 0.
    """

    def __init__(self, embed_dim: int, feature_dim: int = 256, scale: float = 1000.0):
        super().__init__(embed_dim, feature_dim, scale)
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))

    def forward(self, m: Optional[torch.Tensor], batch: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``m`` ``[B]`` (or scalar, or None) -> ``[B, D]``."""
        null = self.null_embedding.to(dtype=dtype, device=device)
        if m is None:
            return null[None].expand(batch, -1)
        m = torch.as_tensor(m, device=device, dtype=torch.float32).reshape(-1)
        if m.numel() == 1 and batch > 1:
            m = m.expand(batch)
        if m.numel() != batch:
            raise ValueError(f"motion_magnitude has {m.numel()} entries for a batch of {batch}")
        dropped = torch.isnan(m)
        return torch.where(dropped[:, None], null[None], self.embed(torch.nan_to_num(m), dtype))


class PooledTextEmbedding(nn.Module):
    """Mean of the caption's token embeddings -> Linear -> SiLU -> Linear (zero-init) -> ``[B, D]``.

    Added to the time embedding like the motion magnitude, it gives the caption the same global
    path into every ResNet block that m has (cross-attention alone reaches only the attention
    levels). ``text`` ``[B, L, D_text]`` -> ``[B, D]``; a dropped caption ("" for classifier-free
    guidance) is just another caption here.
    """

    def __init__(self, text_dim: int, embed_dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(text_dim, embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = _zero_linear(embed_dim, embed_dim)

    def forward(self, text: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if text.dim() != 3:
            raise ValueError(f"text embeddings must be [B, L, D], got {tuple(text.shape)}")
        return self.linear_2(self.act(self.linear_1(text.to(dtype).mean(dim=1))))


class CameraEmbedding(nn.Module):
    """Per-frame camera: flattened 3x4 of the OpenCV c2w -> Linear -> SiLU -> Linear (zero-init).

    ``c2w`` ``[B, F, 4, 4]`` -> ``[B * F, D]`` (frame-major within each batch item, the layout
    of the UNet's per-frame time embedding).
    """

    def __init__(self, embed_dim: int, hidden_dim: Optional[int] = None):
        super().__init__()
        hidden_dim = hidden_dim or embed_dim
        self.linear_1 = nn.Linear(12, hidden_dim)
        self.act = nn.SiLU()
        self.linear_2 = _zero_linear(hidden_dim, embed_dim)

    def forward(self, c2w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if c2w.dim() != 4 or c2w.shape[-2:] not in ((4, 4), (3, 4)):
            raise ValueError(f"camera_c2w must be [B, F, 4, 4], got {tuple(c2w.shape)}")
        flat = c2w[:, :, :3, :4].reshape(-1, 12).to(dtype)
        return self.linear_2(self.act(self.linear_1(flat)))


class FrameTimeEmbedding(_ScalarEmbedding):
    """Per-frame animation time: frame i of an F-frame orbit is at time ``i / (F - 1)`` -> sinusoidal
    features -> Linear -> SiLU -> Linear (zero-init) -> ``[B * F, D]``.

    The dynamic orbit ties each frame to one instant of the animation; without this the network
    can tell frames apart only by their cameras (which say nothing about time when the orbit
    starts at a random azimuth) and by the zero padding of its temporal convolutions. ``scale``
    maps [0, 1] onto the range the timestep features resolve (as diffusion timesteps 0..1000).
    """

    def __init__(self, embed_dim: int, feature_dim: int = 64, scale: float = 1000.0):
        super().__init__(embed_dim, feature_dim, scale)

    def forward(self, batch: int, num_frames: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        times = torch.linspace(0.0, 1.0, num_frames, device=device) if num_frames > 1 else torch.zeros(1, device=device)
        return self.embed(times, dtype).repeat(batch, 1)  # frame-major within each batch item, as the per-frame time embedding
