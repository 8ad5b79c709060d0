"""Typed training config (YAML presets in ``configs/train/``, ``key.sub=value`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional, Union


@dataclass
class ModelConfig:
    base: str = "tiny"  # "tiny" (random tiny UNet3D, CPU) or a ModelScope-T2V diffusers checkpoint id/path
    text_encoder: str = "minilm"  # "minilm" (offline MiniLM) or "base" (tokenizer/text_encoder of model.base)
    vae: str = "none"  # "none" (pixel space), "base" (AutoencoderKL of model.base) or an AutoencoderKL folder (diffusion4d train-autoencoder)
    tiny_block_out_channels: List[int] = field(default_factory=lambda: [32, 64])  # tiny UNet widths
    tiny_layers_per_block: int = 1  # tiny UNet resnets per block
    tiny_attention_head_dim: int = 8  # tiny UNet attention head dim
    tiny_down_block_types: List[str] = field(default_factory=lambda: ["CrossAttnDownBlock3D", "DownBlock3D"])  # tiny UNet down blocks (up blocks mirror them)
    motion_conditioning: bool = True  # motion-magnitude embedding
    # m is multiplied by this before the embedding's sinusoidal features (null: the base's, else 1000). The
    # features interpolate between trained magnitudes only while scale x the largest m stays within a period
    # of the fastest one (2 pi): 1000 x 0.04 spans ~6 periods, so unseen m land on unrelated features
    motion_scale: Optional[float] = None
    # dropout of the ModelScope temporal convolutions (null: the architecture's 0.1). Training only: a sampler
    # runs the network in eval mode, so checkpoints do not record it
    temporal_dropout: Optional[float] = None
    camera_conditioning: bool = True  # per-frame camera embedding
    frame_time_conditioning: bool = False  # per-frame animation-time embedding (frame i of the orbit at time i / (F - 1))
    # when set, each clip's frame-time embedding is multiplied by m / this (a dropped m: by 1): m = 0 puts every
    # frame at the same instant and the embedding grows with the requested motion (null: not scaled). "data": the
    # largest motion magnitude of the training orbits, rounded up to two significant digits, resolved when training
    # starts (the saved config and the checkpoint record the number)
    frame_time_motion_reference: Optional[Union[float, Literal["data"]]] = None
    # what that factor scales: "zero" the whole embedding (m = 0: no frame-time signal), "first" each frame's
    # difference to the first frame's embedding (m = 0: every frame at the first frame's instant)
    frame_time_motion_anchor: Literal["zero", "first"] = "zero"
    text_pooled_conditioning: bool = False  # mean caption embedding added to the time embedding (a global text path, as m has)
    static_conditioning: bool = False  # static-orbit latents concatenated to the input
    image_conditioning: bool = False  # first-view latents concatenated (image-to-4D)
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"  # scheduler prediction type
    num_train_timesteps: int = 1000  # DDPM training timesteps
    beta_schedule: str = "scaled_linear"  # scheduler beta schedule (ModelScope: scaled_linear; pixel space: squaredcos_cap_v2)
    timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading"  # sampler timesteps ("trailing" starts at t = T-1)
    gradient_checkpointing: bool = False  # recompute UNet blocks in backward
    prior: str = "auto"  # frozen 3D prior stored in stage-2 checkpoints: auto (model.base when it is a stage-1 checkpoint), none, or a stage-1 checkpoint folder


@dataclass
class DataConfig:
    root: str = ""  # curated dataset root (manifest.jsonl + <uid>/...)
    resolution: int = 32  # frame size (pixels, square)
    num_frames: int = 8  # frames per training clip
    frame_sampling: Literal["uniform", "first"] = "uniform"  # uniform subsample of the orbit or its first frames
    random_orbit: bool = True  # pick one of an asset's orbits at random per sample (else orbit 0)
    cache_latents: bool = False  # precompute VAE latents + text embeddings to disk (safetensors)
    cache_dir: str = ""  # latent cache folder ("" -> <output_dir>/latent_cache)
    num_workers: int = 0  # DataLoader workers
    zero_motion_prob: float = 0.0  # stage 4d: P(a sample is its static orbit served with m = 0), see OrbitDataset
    # stage 4d: the m the model is given is m x exp(sigma x N(0, 1)) (0 = off): m keeps its order of magnitude but
    # stops naming an asset whose magnitude no other asset shares (losses.jitter_motion)
    motion_jitter: float = 0.0

    def validate(self) -> None:
        if self.resolution < 8 or self.num_frames < 1:
            raise ValueError("resolution must be >= 8 and num_frames >= 1")
        if not 0.0 <= self.zero_motion_prob <= 1.0:
            raise ValueError(f"data.zero_motion_prob must be in [0, 1], got {self.zero_motion_prob}")
        if not self.motion_jitter >= 0.0:
            raise ValueError(f"data.motion_jitter must be >= 0, got {self.motion_jitter}")


@dataclass
class LossConfig:
    omega: float = 0.1  # weight of the motion-magnitude reconstruction loss L_mr
    mr_reduction: Literal["mean", "sum"] = "mean"  # motion magnitude form inside L_mr
    mr_weighting: Literal["none", "alpha_bar_sq"] = "alpha_bar_sq"  # per-timestep L_mr weight (none = Eq. 2 literally)
    # extra weight on the part of the denoising error that differs between the frames of a clip (its per-frame
    # deviation from the clip's mean error): the minimiser is unchanged, the views and motion are learnt sooner
    frame_deviation_weight: float = 0.0
    snr_gamma: float = 0.0  # Min-SNR-gamma weighting of L_ldm (0 = off, the paper's plain MSE; 5 is the usual value)
    foreground_weight: float = 0.0  # L_ldm weight 1 + this x foreground fraction per latent cell, mean 1 (0 = off, plain MSE)
    # L_ldm weight 1 + this x each latent cell's distance to the static orbit (largest in the clip = 1), mean 1:
    # the cells where the asset moves, the only ones the motion magnitude changes, weigh more (stage 2; 0 = off)
    motion_weight: float = 0.0
    timestep_sampling: Literal["uniform", "logit_normal", "mode"] = "uniform"  # training t density (uniform = DDPM; see losses.sample_timesteps)
    logit_mean: float = 0.0  # logit_normal: mean of the normal before the sigmoid (> 0 favours high noise)
    logit_std: float = 1.0  # logit_normal: its standard deviation
    mode_scale: float = 1.29  # mode: hump scale (SD3's default)


@dataclass
class DropoutConfig:
    all: float = 0.1  # P(every condition dropped together): trains the unconditional branch eps(z_t, t) of Eq. 3
    text: float = 0.1  # P(caption -> "") for classifier-free guidance
    image: float = 0.1  # P(first-view latents dropped)
    static: float = 0.1  # P(static-orbit latents dropped)
    motion: float = 0.1  # P(motion magnitude -> null embedding)


@dataclass
class OptimConfig:
    lr: float = 1e-4  # learning rate (paper: constant 3e-5)
    lr_scheduler: str = "constant"  # diffusers get_scheduler name (constant, cosine, linear, constant_with_warmup...)
    lr_warmup_steps: int = 0  # warmup steps
    adam_beta1: float = 0.9  # Adam beta1
    adam_beta2: float = 0.999  # Adam beta2
    weight_decay: float = 0.0  # AdamW weight decay
    adam_epsilon: float = 1e-8  # Adam epsilon
    use_8bit_adam: bool = False  # bitsandbytes AdamW8bit
    # plain (non-DeepSpeed) runs: torch's fused AdamW and a foreach EMA update instead of per-parameter loops.
    # Same arithmetic up to float rounding, ~20 ms less per tiny-preset CPU step; off by default because the
    # demo's short run is chaotic: the rounding change alone moved its seed-0 results (docs/training.md)
    fused: bool = False
    max_grad_norm: float = 1.0  # gradient clipping (0 = off)


@dataclass
class ValidationConfig:
    every: int = 0  # validate every N steps (0 = only at the end when max_steps > 0 and at_end)
    at_end: bool = True  # also validate after the last step
    prompts: List[str] = field(default_factory=list)  # prompts ([] -> captions of the first samples)
    num_samples: int = 2  # samples per validation
    num_inference_steps: int = 10  # DDIM steps
    guidance_scale: float = 3.0  # w1 of Eq. 3 (eps_c + w1 (eps_c - eps_uncond)), as `generate --guidance W1 0`
    motion_magnitude: Optional[float] = None  # m for sampling (null: the dataset sample's own m)
    fps: int = 8  # mp4 frame rate


@dataclass
class TrainConfig:
    stage: Literal["4d", "prior3d"] = "4d"  # prior3d: stage 1, the 3D-aware prior on static orbits; 4d: stage 2, 4D fine-tuning
    output_dir: str = "runs/tiny"  # run folder (checkpoints, logs, validation videos)
    seed: int = 0  # global seed (data order, noise, dropout)
    max_steps: int = 100  # optimisation steps
    batch_size: int = 2  # per-process micro-batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimisation step
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # accelerate mixed precision
    num_threads: int = 0  # torch CPU threads (0 = leave torch's default)
    ema: bool = False  # keep an EMA of the UNet (saved in pipeline folders)
    ema_decay: float = 0.9999  # EMA decay (the largest it gets)
    # EMA warm-up: null keeps diffusers' (1 + step) / (10 + step), an average over about the last 10 % of the
    # steps; a power p uses 1 - (1 + step)^-p instead (diffusers' use_ema_warmup), about the last (1 + step)^p
    # steps (p = 2/3: ~100 of 1000, p = 0.85: ~350 of 1000)
    ema_power: Optional[float] = None
    checkpoint_every: int = 50  # save checkpoint-<step> every N steps (0 = only at the end)
    keep_last: int = 3  # checkpoints kept
    log_every: int = 1  # scalars to trackers every N steps
    report_to: Literal["tensorboard", "wandb", "all", "none"] = "tensorboard"  # accelerate trackers
    process_group_timeout_minutes: int = 180  # collective timeout (torch's default is 10 min with NCCL); covers latent-cache building
    model: ModelConfig = field(default_factory=ModelConfig)  # model
    data: DataConfig = field(default_factory=DataConfig)  # data
    loss: LossConfig = field(default_factory=LossConfig)  # loss
    dropout: DropoutConfig = field(default_factory=DropoutConfig)  # condition dropout (CFG)
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser
    validation: ValidationConfig = field(default_factory=ValidationConfig)  # validation sampling

    def validate(self) -> None:
        if self.max_steps < 0 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("max_steps >= 0, batch_size >= 1 and gradient_accumulation_steps >= 1 are required")
        if self.keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        if self.process_group_timeout_minutes < 1:
            raise ValueError("process_group_timeout_minutes must be >= 1")
        if self.ema_power is not None and not 0.0 < self.ema_power < 1.0:
            raise ValueError(f"ema_power must be in (0, 1) (or null for diffusers' default warm-up), got {self.ema_power}")
        d = self.dropout
        for name in ("all", "text", "image", "static", "motion"):
            if not 0.0 <= getattr(d, name) <= 1.0:
                raise ValueError(f"dropout.{name} must be in [0, 1], got {getattr(d, name)}")
        if self.model.temporal_dropout is not None and not 0.0 <= self.model.temporal_dropout < 1.0:
            raise ValueError(f"model.temporal_dropout must be in [0, 1) (or null for the architecture's), got {self.model.temporal_dropout}")
        for name in ("foreground_weight", "motion_weight", "frame_deviation_weight"):
            if not getattr(self.loss, name) >= 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self.loss, name)}")
        reference = self.model.frame_time_motion_reference
        if reference is not None and reference != "data" and not reference > 0:
            raise ValueError(f"model.frame_time_motion_reference must be > 0, \"data\" or null, got {reference}")
        if self.model.motion_scale is not None and not self.model.motion_scale > 0:
            raise ValueError(f"model.motion_scale must be > 0 (or null for the base's), got {self.model.motion_scale}")
        if self.stage == "prior3d":
            m = self.model
            extra = [k for k in ("motion_conditioning", "static_conditioning", "image_conditioning") if getattr(m, k)]
            if extra:
                raise ValueError(
                    "stage=prior3d trains the 3D-aware prior on static orbits (text + cameras only): set "
                    + ", ".join(f"model.{k}=false" for k in extra)
                )


@dataclass
class AutoencoderConfig:
    """A small ``AutoencoderKL`` fitted to curated renders (``diffusion4d train-autoencoder``,
    :mod:`diffusion4d.train.autoencoder`); the trainer uses it with ``model.vae=<its folder>``."""

    resolution: int = 64  # frame size it encodes (pixels)
    block_out_channels: List[int] = field(default_factory=lambda: [16, 32, 32])  # one downsampling per block after the first
    layers_per_block: int = 1  # ResNet blocks per level
    latent_channels: int = 4  # channels of the latent
    norm_num_groups: int = 8  # GroupNorm groups (divide every width)
    mid_block_attention: bool = False  # self-attention in the mid block (off: 16x16 latents need no global mixing for flat-shaded objects)
    kl_weight: float = 1.0e-4  # weight of the per-element KL term
    foreground_weight: float = 0.0  # per-pixel loss weight 1 + this x object mask (mean 1): small objects on white (0 = plain mean)
    steps: int = 600  # optimisation steps
    batch_size: int = 16  # frames per step
    lr: float = 1.0e-3  # AdamW learning rate
    lr_scheduler: str = "constant"  # diffusers get_scheduler name (constant, cosine, linear...), over `steps`, no warmup
    # fold a whitening of the latents (ZCA over the training frames' posterior modes) into the 1x1 convs around the
    # latent: every latent direction then has unit variance. Without it the demo's latents vary along 2 of 4
    # directions (eigenvalues 1.7, 0.1, 5e-4, 1e-4) and colour lives in the two flat ones (docs/training.md)
    whiten_latents: bool = False
    holdout_every: int = 5  # every k-th asset (sorted uids) is held out for the reported PSNR (0: none)
    seed: int = 0  # init, batches, flips
    num_threads: int = 0  # torch CPU threads (0: torch's default)

    def validate(self) -> None:
        if self.resolution < 8 or self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("resolution >= 8, steps >= 1, batch_size >= 1 and lr > 0 are required")
        if self.foreground_weight < 0:
            raise ValueError(f"foreground_weight must be >= 0, got {self.foreground_weight}")
        from diffusers.optimization import SchedulerType

        if self.lr_scheduler not in {t.value for t in SchedulerType}:
            raise ValueError(f"lr_scheduler {self.lr_scheduler!r} is not one of diffusers' schedules: {', '.join(t.value for t in SchedulerType)}")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"every block_out_channels entry must be a multiple of norm_num_groups={self.norm_num_groups}")
