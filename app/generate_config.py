"""``GenerateConfig``: the sampling settings of ``diffusion4d generate`` (presets in ``configs/generate/``)."""

from dataclasses import dataclass
from typing import Literal, Optional


@dataclass
class GenerateConfig:
    """Sampling settings of ``diffusion4d generate`` (presets in ``configs/generate/``)."""

    guidance_scale: float = 7.0  # w1 of Eq. 3
    prior_guidance_scale: float = 0.5  # w2 of Eq. 3
    prior: Literal["auto", "separate", "self"] = "auto"  # the 3D-aware prior of the w2 term
    scheduler: Literal["ddim", "dpm"] = "ddim"  # sampler
    steps: Optional[int] = None  # sampler steps (null: 50 for ddim, 20 for dpm)
    seed: int = 0  # noise seed (sample k uses seed + k)
    num_samples: int = 1  # samples per input
    frames: Optional[int] = None  # frames (null: the model's)
    resolution: Optional[int] = None  # frame size in pixels (null: the model's)
    elevation: float = 0.0  # orbit elevation, degrees
    start_azimuth: float = 0.0  # azimuth of frame 0, degrees
    fps: float = 8.0  # frame rate of orbit.mp4 / orbit.gif
    renderer: str = "fast"  # renderer of the static orbit for --static-3d
    batch_branches: bool = True  # guidance branches in one batched forward
    reconstruct: bool = False  # fit 4D Gaussians to every sample
    recon_preset: str = "default"  # recon preset for reconstruct
    device: Optional[str] = None  # torch device (null: cuda if available, else cpu)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights / sampling dtype
