"""Typed configuration of ``diffusion4d curate`` (presets in ``configs/curation/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional, Tuple

from diffusion4d.cameras import DEFAULT_FOV_DEG, RENDER_MODES


@dataclass
class RenderSettings:
    renderer: Literal["fast", "blender"] = "fast"  # rendering backend
    modes: List[str] = field(default_factory=lambda: ["dynamic", "static", "front", "four_view"])  # clips to write per asset
    frames: int = 24  # frames per clip (four_view writes 4x this)
    resolution: int = 256  # square image side in pixels
    elevation: float = 0.0  # camera elevation in degrees (orbits without elevation augmentation)
    radius: float = 2.0  # camera distance to the origin (object in the unit box)
    fov: float = DEFAULT_FOV_DEG  # field of view in degrees (Blender's 35 mm by default)
    orbits_per_asset: int = 2  # dynamic/static orbit pairs: orbit 0 starts at the front, later ones at a random azimuth
    azimuth_aug: bool = False  # also randomise orbit 0's start azimuth (and the front/four-view camera)
    elevation_aug: bool = False  # random elevation per orbit, drawn from elevation_range
    elevation_range: Tuple[float, float] = (5.0, 30.0)  # degrees, for elevation_aug
    duration_seconds: float = 0.0  # >0: play only this many seconds of the animation; 0: the whole animation
    animation: str = "longest"  # which animation: longest | first | <index> | <name>
    normalize: Literal["t0", "all"] = "t0"  # unit-box normalisation from the bounds at t0 or over all times
    msaa: int = 4  # fast renderer multisampling (0/1: off)
    max_extent: float = 1.0e6  # bounding boxes larger than this fail as absurd_size
    blender: str = ""  # Blender executable for renderer=blender ("" = search PATH / BlenderProc)
    blender_engine: Literal["workbench", "cycles", "eevee"] = "workbench"  # Blender engine
    blender_samples: int = 16  # Cycles samples

    def validate(self) -> None:
        bad = [m for m in self.modes if m not in RENDER_MODES]
        if bad or not self.modes:
            raise ValueError(f"modes {bad or self.modes} invalid; valid: {', '.join(RENDER_MODES)}")
        if self.frames < 3:
            raise ValueError(f"frames must be >= 3 (the SSIM rule needs t0, T/4, T/2), got {self.frames}")
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {self.resolution}")
        if self.orbits_per_asset < 1:
            raise ValueError("orbits_per_asset must be >= 1")
        if not 0 < self.fov < 180 or self.radius <= 0:
            raise ValueError("fov must be in (0, 180) and radius > 0")


@dataclass
class RuleSettings:
    require_animation: bool = True  # reject assets without animation (rule no_animation)
    min_coverage: float = 0.0  # empty_render: reject when every frame covers at most this fraction
    out_of_frame: bool = True  # apply the out-of-frame rule
    border_px: int = 1  # out_of_frame: border width in pixels
    border_alpha: int = 0  # out_of_frame: alpha above this counts as object
    ssim: bool = True  # apply the SSIM rule on the front video
    s_high: float = 0.95  # SSIM rule: reject when both SSIMs exceed this (too static)
    s_low: float = 0.4  # SSIM rule: reject when an SSIM falls below this (too drastic)
    min_motion: float = 0.0  # reject when orbit-0 motion magnitude is below this
    max_motion: float = 1.0  # reject when orbit-0 motion magnitude is above this
    write_rejected: bool = True  # keep the clips of rule-rejected assets (for review)
    keep_static_for_prior: bool = True  # render + keep static orbits of assets rejected for motion (stage-1 prior data)

    def validate(self) -> None:
        if not self.s_low < self.s_high:
            raise ValueError(f"s_low ({self.s_low}) must be below s_high ({self.s_high})")
        if self.min_motion > self.max_motion:
            raise ValueError("min_motion must be <= max_motion")


@dataclass
class CurateConfig:
    output: str = ""  # output root (clips, meta.json, manifest.jsonl)
    render: RenderSettings = field(default_factory=RenderSettings)
    rules: RuleSettings = field(default_factory=RuleSettings)
    seed: int = 0  # seeds augmentation (per asset: hash of seed and uid) and the procedural source
    workers: int = 1  # worker processes (0: in the main process)
    executor: Literal["local", "ray"] = "local"  # local process pool or Ray cluster
    ray_address: Optional[str] = None  # Ray address (None: start a local instance)
    shard: str = "0/1"  # i/N: this job curates the uids whose hash mod N == i
    timeout: float = 600.0  # seconds per asset before its worker is killed (failed: timeout)
    retry_failed: bool = False  # rerun assets recorded as failed
    limit: int = 0  # >0: curate at most this many assets (after sharding)

    def validate(self) -> None:
        parse_shard(self.shard)
        if self.workers < 0 or self.timeout <= 0:
            raise ValueError("workers must be >= 0 and timeout > 0")


def parse_shard(text: str) -> Tuple[int, int]:
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must be i/N, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= i < N")
    return i, n
