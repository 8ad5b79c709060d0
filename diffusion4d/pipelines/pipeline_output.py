"""Output of :class:`~diffusion4d.pipelines.Diffusion4DPipeline`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict

from diffusers.utils import BaseOutput

from diffusion4d.cameras import CameraTrajectory


@dataclass
class Diffusion4DPipelineOutput(BaseOutput):
    """Generated orbital videos and their cameras.

    Args:
        frames: per ``output_type``: ``"np"`` float32 ``[B, F, H, W, 3]`` in [0, 1];
            ``"pt"`` ``[B, F, 3, H, W]``; ``"pil"`` a list (batch) of lists (frames) of RGB
            ``PIL.Image``; ``"latent"`` the final latents ``[B, C, F, h, w]``.
            RGB is composited over white, the project-wide convention.
        cameras: the dynamic orbit (frame i = camera i at animation time i / (F - 1)), the same
            for every video of the batch; ``cameras.to_json()`` is a valid ``cameras.json``.
        timings: seconds spent per phase (``encode``, ``denoise``, ``decode``) and ``steps``,
            the number of denoising steps run.
    """

    frames: Any
    cameras: CameraTrajectory
    timings: Dict[str, float] = field(default_factory=dict)
