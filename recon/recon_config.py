"""Typed configuration of the reconstruction stage (presets in ``configs/recon/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal

from diffusion4d.config import load_config

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "recon"


@dataclass
class InitConfig:
    num_points: int = 4000  # Gaussians sampled uniformly in the init box
    extent: float = 1.0  # side of the init box (the asset lives in the unit box)
    sh_degree: int = 1  # spherical-harmonics degree of the colours (0 = view-independent)
    init_opacity: float = 0.1  # initial opacity of every Gaussian
    scale_factor: float = 0.5  # initial scale = this x mean distance to the 3 nearest neighbours
    mode: Literal["box", "visual_hull"] = "box"  # where the points start: uniformly in the box, or inside the views' visual hull
    hull_misses: int = 0  # visual_hull: views that may see a kept point off the object (a part that moves between frames)

    def validate(self) -> None:
        if not 0 <= self.sh_degree <= 3:
            raise ValueError("sh_degree must be in 0..3")
        if self.num_points < 1:
            raise ValueError("num_points must be >= 1")
        if self.hull_misses < 0:
            raise ValueError("hull_misses must be >= 0")


@dataclass
class LearningRates:
    means: float = 1.6e-3  # Adam learning rate of the Gaussian centres
    quats: float = 1e-3  # of the rotations
    scales: float = 5e-3  # of the log-scales
    opacities: float = 5e-2  # of the opacity logits
    sh0: float = 2.5e-3  # of the DC colour
    shN: float = 1.25e-4  # of the higher SH bands
    planes: float = 1e-2  # of the HexPlane grids
    mlp: float = 1e-3  # of the deformation MLP
    offsets: float = 1e-3  # of the per-frame offsets (freeze-time mode)
    rigid_rotation: float = 5e-3  # of the rigid motion's rotation vectors (radians)
    rigid_translation: float = 1e-3  # of the rigid motion's translations
    track_rotation: float = 2e-2  # of a new rigid knot while it is tracked alone (radians)
    track_translation: float = 5e-3  # of its translation then


@dataclass
class DensifyConfig:
    enabled: bool = True  # use gsplat's DefaultStrategy (falls back to none without gsplat)
    start_iter: int = 100  # first refinement step
    stop_iter: int = 1500  # last refinement step
    every: int = 100  # refine every N steps
    reset_every: int = 3000  # opacity reset period
    grow_grad2d: float = 2e-4  # image-plane gradient threshold for clone/split
    grow_scale3d: float = 0.01  # clone below / split above this scale (scene units)
    prune_opa: float = 0.005  # prune below this opacity
    prune_scale3d: float = 0.1  # prune larger Gaussians (after the first reset)


@dataclass
class CoarseConfig:
    iterations: int = 1000  # static-fit steps
    batch_views: int = 2  # views per step
    densify: DensifyConfig = field(default_factory=DensifyConfig)


@dataclass
class FineConfig:
    iterations: int = 600  # deformation-fit steps (orbit) / temporal steps (freeze_time)
    batch_views: int = 2  # frames per step (each frame its own time)
    resolutions: List[int] = field(default_factory=lambda: [32])  # HexPlane spatial resolutions
    time_resolution: int = 12  # HexPlane resolution along time
    features: int = 16  # feature channels per plane
    hidden: int = 64  # MLP width
    tv_weight: float = 1e-3  # plane smoothness weight
    train_gaussians: bool = True  # also refine the canonical Gaussians during the fine stage
    gaussian_lr_scale: float = 0.2  # learning-rate factor for the canonical Gaussians here
    colour: bool = False  # a HexPlane head for DC-colour changes over time (baked lighting on turning parts)
    rigid_knots: int = 0  # per-time rigid motion under the offsets: 0 = none, -1 = a knot per frame, N = N knots
    rigid_smoothness: float = 10.0  # weight of the rigid knots' squared acceleration
    time_curriculum: float = 0.0  # fraction of the fine steps over which frames enter in time order (0 = all at once)
    track_steps: int = 20  # with rigid knots and a curriculum: steps fitting each new frame's knot alone, per level
    track_levels: int = 3  # image-pyramid levels of that tracking (1 = full resolution only)
    rigid_free_offsets: bool = True  # with rigid knots: the local offsets carry no net translation or rotation
    rigid_trial_steps: int = 0  # > 0: keep the rigid knots only if a trial this long on the first frames fits them better
    rigid_trial_frames: float = 1.0  # fraction of the training frames (the earliest) that trial uses
    rigid_trial_downsample: int = 2  # the trial fits frames this many times smaller


@dataclass
class FreezeTimeConfig:
    offset_iterations: int = 300  # canonical + per-frame offsets steps (after the coarse fit)
    offset_l1: float = 1e-2  # L1 penalty on the per-frame offsets
    arap_weight: float = 1.0  # as-rigid-as-possible weight in the temporal fit
    arap_k: int = 8  # neighbours in the ARAP graph
    temporal_clip: str = "front"  # sibling folder with the fixed-view video (falls back to the orbit)


@dataclass
class LossConfig:
    l1: float = 0.8  # L1 weight
    ssim: float = 0.2  # (1 - SSIM) weight
    lpips: float = 0.0  # LPIPS weight (only when its weights are present locally)
    lpips_net: str = "alex"  # LPIPS backbone: alex | vgg
    anisotropy: float = 0.0  # weight of the penalty on Gaussians longer than max_anisotropy x their shortest axis
    max_anisotropy: float = 4.0  # longest / shortest axis allowed for free by that penalty


@dataclass
class OutputConfig:
    fps: int = 12  # frame rate of the mp4s
    turntable_views: int = 36  # views of the turntable video
    turntable_time: float = 0.0  # animation time of the turntable
    over_time_frames: int = 24  # frames of the fixed-view video
    ply: bool = True  # write a PLY per time step
    videos: bool = True  # write the mp4s


@dataclass
class ReconConfig:
    resolution: int = 128  # fitting resolution, longer side (larger frames are downsampled; 0 = native)
    background: float = 1.0  # background grey level (1 = white, the clip convention)
    seed: int = 0  # random seed
    backend: Literal["auto", "gsplat", "torch", "cpu"] = "auto"  # rasterizer backend (auto: gsplat on CUDA, else the compiled cpu kernel, else torch)
    mode: Literal["orbit", "freeze_time"] = "orbit"  # Diffusion4D coarse-to-fine or 4Real freeze-time
    holdout: int = 0  # hold out every K-th dynamic frame for evaluation (0 = none)
    init: InitConfig = field(default_factory=InitConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    coarse: CoarseConfig = field(default_factory=CoarseConfig)
    fine: FineConfig = field(default_factory=FineConfig)
    freeze_time: FreezeTimeConfig = field(default_factory=FreezeTimeConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def validate(self) -> None:
        if self.fine.rigid_knots < -1 or self.fine.rigid_knots == 1:
            raise ValueError("fine.rigid_knots must be 0 (none), -1 (a knot per frame) or >= 2")
        if not 0.0 <= self.fine.time_curriculum < 1.0:
            raise ValueError("fine.time_curriculum must be in [0, 1)")
        if self.resolution < 0:
            raise ValueError("resolution must be >= 0")
        if self.loss.anisotropy < 0 or self.loss.max_anisotropy < 1:
            raise ValueError("loss.anisotropy must be >= 0 and loss.max_anisotropy >= 1")
        if self.holdout < 0 or self.holdout == 1:
            raise ValueError("holdout must be 0 (none) or >= 2")


def preset_names() -> List[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_recon_config(preset: str = "default", overrides=()) -> ReconConfig:
    """Load ``configs/recon/<preset>.yaml`` (or a YAML path) with ``a.b=value`` overrides."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown recon preset {preset!r}; valid presets: {', '.join(preset_names())}")
    return load_config(ReconConfig, path, list(overrides))
