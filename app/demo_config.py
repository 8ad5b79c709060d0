"""``DemoConfig``: the settings of ``diffusion4d demo`` (presets in ``configs/demo/``)."""

from dataclasses import dataclass, field
from typing import List, Literal, Optional


@dataclass
class DemoConfig:
    seed: int = 0  # seed of every stage
    assets: int = 14  # procedural assets to generate
    # motion-amplitude scales of every procedural asset (``assets --amplitudes``): each object is also
    # trained at the reduced amplitudes, so its caption, not its motion magnitude, identifies it
    amplitudes: List[float] = field(default_factory=lambda: [1.0])
    # motion swaps (``assets --motion-shifts``): asset i is also trained with the motion of asset i + s,
    # so a motion (and its magnitude) belongs to several objects, not to one
    motion_shifts: List[int] = field(default_factory=list)
    frames: int = 8  # frames per orbit (curation, training and generation)
    render_resolution: int = 64  # curation render size (pixels)
    train_resolution: int = 64  # training / generation frame size (pixels); with the autoencoder the model works on 4x smaller latents
    autoencoder_steps: int = 300  # steps of the small AutoencoderKL fitted to the curated renders (0: the model works in pixel space)
    autoencoder_overrides: List[str] = field(default_factory=list)  # extra train-autoencoder overrides (key=value)
    prior_steps: int = 300  # stage 1: steps of the tiny 3D-aware prior on static orbits (0: skip stage 1, stage 2 from scratch)
    train_steps: int = 1000  # stage 2: optimisation steps of the tiny 4D model (starts from the stage-1 prior)
    train_overrides: List[str] = field(default_factory=list)  # extra trainer overrides (key=value), for both training stages
    stage2_overrides: List[str] = field(default_factory=list)  # extra trainer overrides for stage 2 only (after train_overrides)
    threads: int = 0  # torch CPU threads of the training stage (0 = torch's default, all cores)
    prompts: int = 5  # training captions generated as text-to-4D samples (scored against their own asset)
    sweep_prompts: int = 2  # captions swept over motion magnitudes (the most moving assets first)
    probe_prompts: int = 3  # captions recombining training attributes never seen together (generalisation probe, no bar)
    sweep_values: int = 5  # requested magnitudes of a motion sweep: evenly spaced from 0 to the largest m of the curated assets
    sampler: Literal["ddim", "dpm"] = "ddim"  # the generate stage's sampler: DDIM or DPM-Solver++ (second order)
    sampling_steps: int = 20  # sampler steps
    # initial-noise seed of the generate stage (None: ``seed``); benchmarks/demo_seeds.py varies it alone
    # to measure how much the targets depend on the one noise draw the demo samples with
    sampling_seed: Optional[int] = None
    guidance: List[float] = field(default_factory=lambda: [3.0, 0.5])  # w1, w2 of the 3D-aware CFG
    recon_preset: str = "demo"  # reconstruction preset (configs/recon)
    eval_metrics: str = "clip_f,clip_o,psnr,ssim,lpips,iou,view_iou,colour,fvd,motion,time"  # metrics of eval/run_metrics.py
    check_browser: bool = True  # open report.html in headless Chromium when available
    # the run's time target in minutes (the full preset 10, quick 3): the report compares the wall time from the
    # process start to the report with it; None: no time verdict
    time_target_minutes: Optional[float] = None

    def noise_seed(self) -> int:
        """The seed the generate stage samples with: ``sampling_seed``, else ``seed``."""
        return self.seed if self.sampling_seed is None else self.sampling_seed
