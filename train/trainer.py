"""The fine-tuning loop (``accelerate launch train/finetune.py --config ... [key=value ...]``).

``run(cfg, resume)`` reads as its phases: accelerator -> components -> data (+ latent cache)
-> optimiser/EMA -> prepare -> resume -> steps (loss, NaN guard, log, checkpoint, validate).
Randomness (data order, orbit choice, noise, timesteps, condition dropout, model dropout) is
derived from ``(seed, step, micro-step, rank)``, so a run resumed from ``checkpoint-N``
reproduces the losses of the uninterrupted run exactly on CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from diffusion4d.config import config_to_dict, save_config
from diffusion4d.errors import UserError
from diffusion4d.io.records import TRAIN_SUMMARY_FILE, TrainSummary
from diffusion4d.logging_utils import get_logger, progress

from diffusion4d.train import losses as L
from diffusion4d.train.checkpointing import remove_stale_temporaries, resolve_resume, save_checkpoint, saved_unet_config, step_of
from diffusion4d.train.model_setup import PRIOR_FOLDER, build_components, freeze_prior, make_optimizer
from diffusion4d.train.orbit_dataset import (
    OrbitDataset, build_latent_cache, cache_fingerprint, collate, data_motion_reference, epoch_batches, foreground_fraction,
    missing_cache_entries, model_folder_identity,
)
from diffusion4d.train.train_config import TrainConfig

log = get_logger("train")


class TrainingDiverged(RuntimeError):
    """The loss became NaN/Inf."""


def check_finite(value: float, step: int, last_checkpoint: Optional[Path]) -> None:
    """Raise :class:`TrainingDiverged` with a clear message when ``value`` is NaN/Inf."""
    if not math.isfinite(value):
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
        raise TrainingDiverged(f"loss is {value} at step {step}: stopping ({where}); lower optim.lr or use mixed_precision=no")


def _trackers(report_to: str) -> List[str]:
    import importlib.util

    wandb = importlib.util.find_spec("wandb") is not None
    if report_to == "none":
        return []
    if report_to == "wandb":
        if not wandb:
            raise UserError("report_to=wandb but wandb is not installed (pip install wandb)")
        return ["wandb"]
    return ["tensorboard"] + (["wandb"] if report_to == "all" and wandb else [])


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, bool, str)) else str(v)
    return out


def truncate_losses(path: Path, step: int) -> int:
    """Keep the rows of ``losses.jsonl`` up to ``step`` (atomic rewrite); returns how many were dropped."""
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # a line cut by a kill
            dropped += 1
            continue
        if int(row.get("step", 0)) <= step:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, path)
    return dropped


def first_logged_loss(path: Path, history: List[Dict[str, Any]]) -> Optional[float]:
    """The run's first loss: step 1 of ``losses.jsonl`` when this output folder logged it (a resumed
    run), else the first step this process trained."""
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("step") == 1:
                return float(row["loss"])
    return history[0]["loss"] if history else None


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, InitProcessGroupKwargs, ProjectConfiguration

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    # one timeout for every collective, long enough for the ranks to build their share of the latent
    # cache between two barriers; CPU multi-process (DDP or DeepSpeed) needs the gloo backend
    pg = {"timeout": datetime.timedelta(minutes=cfg.process_group_timeout_minutes)}
    if distributed and not torch.cuda.is_available():
        pg["backend"] = "gloo"
    # a multi-process launch on a machine without CUDA (`accelerate launch --multi_gpu` or torchrun) starts
    # every rank with LOCAL_RANK set but without --cpu; accelerate then finds no device backend, runs each
    # rank as an independent single process and its barriers wait for nobody. DDP over gloo needs cpu=True
    # (DeepSpeed sets itself up from its own launcher's environment and keeps its CPU accelerator)
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    handlers = [InitProcessGroupKwargs(**pg)]
    accelerator = Accelerator(
        cpu=distributed and not torch.cuda.is_available() and not deepspeed,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=_trackers(cfg.report_to) or None,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=str(Path(cfg.output_dir) / "logs")),
        kwargs_handlers=handlers,
    )
    if distributed and accelerator.distributed_type == DistributedType.NO:
        raise UserError(f"launched as {os.environ['WORLD_SIZE']} processes, but accelerate found no backend to join them: "
                        f"each rank would train its own replica; on a machine without a GPU launch with "
                        f"--config_file configs/accelerate/cpu_ddp.yaml")
    ds = accelerator.state.deepspeed_plugin
    if ds is not None:
        ds.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
        if cfg.mixed_precision in ("fp16", "bf16") and not deepspeed_supports(cfg.mixed_precision):
            from deepspeed.accelerator import get_accelerator

            other = [p for p in ("bf16", "fp16") if p != cfg.mixed_precision and deepspeed_supports(p)] + ["no"]
            raise UserError(f"mixed_precision={cfg.mixed_precision} is not supported by DeepSpeed's "
                            f"{get_accelerator().device_name()} accelerator on this machine; "
                            f"use mixed_precision={' or '.join(other)}, or run on a GPU")
        if cfg.ema and ds.zero_stage == 3:
            raise UserError("ema=true is not supported with DeepSpeed ZeRO-3 (parameters are sharded); use ZeRO-2 or ema=false")
    return accelerator


def deepspeed_supports(precision: str) -> bool:
    """Whether DeepSpeed's accelerator on this machine can train in ``precision`` (``fp16``/``bf16``).

    On GPUs both are supported; DeepSpeed's CPU accelerator runs fp16 only where oneDNN has fp16
    kernels for the processor (AVX512-FP16 / AMX), so the answer differs between CPUs."""
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    return bool(acc.is_fp16_supported() if precision == "fp16" else acc.is_bf16_supported())


@contextlib.contextmanager
def _zero3_init_disabled(accelerator):
    """A context in which ``from_pretrained`` builds whole modules under DeepSpeed ZeRO-3.

    accelerate registers its DeepSpeed config with transformers whatever ``zero3_init_flag`` says,
    and transformers then partitions every model it loads under ZeRO-3, including the frozen text
    encoder that no engine ever gathers ("'weight' must be 2-D" at the first prompt). The
    registration is lifted while the components load and restored afterwards."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None or not plugin.hf_ds_config.is_zero3():
        yield
        return
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        plugin.set_deepspeed_weakref()


def gate_reference(data_root: str, checkpoint: Optional[Path]) -> float:
    """The number ``model.frame_time_motion_reference: data`` stands for. A fresh run: the training
    orbits' largest motion magnitude rounded up (:func:`data_motion_reference`). A resumed run: the
    number its checkpoint's UNet was built with (the data may have changed since; a different
    number would change what the saved weights mean), with a warning when the data now gives
    another."""
    saved = saved_unet_config(checkpoint).get("frame_time_motion_reference") if checkpoint is not None else None
    if saved is None:
        value = data_motion_reference(data_root)
        log.info("frame-time gate reference %g: the training orbits' largest motion magnitude, rounded up", value)
        return value
    saved = float(saved)
    try:
        current: Optional[float] = data_motion_reference(data_root)
    except UserError:
        current = None
    if current != saved:
        log.warning("frame-time gate reference: the data under %s now gives %s, the checkpoint %s was trained with %g; "
                    "resuming with %g (start a new output_dir to train with the data's)", data_root,
                    "no moving orbit" if current is None else f"{current:g}", checkpoint, saved, saved)  # fmt: skip
    else:
        log.info("frame-time gate reference %g, from the checkpoint %s (the data gives the same)", saved, checkpoint)
    return saved


def _seed_for(cfg: TrainConfig, micro_step: int, rank: int) -> int:
    return (cfg.seed * 1_000_003 + micro_step * 7_919 + rank * 104_729) % (2**62)


def _param_checksum(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Trainer:
    """State and phases of one training run."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        self.acc = make_accelerator(cfg)
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.device = self.acc.device
        self.last_checkpoint: Optional[Path] = None
        self.step = 0
        self.timings: Dict[str, float] = {}

    # ------------------------------------------------------------------ phases
    def setup(self, resume_from: Optional[Path] = None) -> None:
        """Build the model, data, optimizer and engine. ``resume_from``: the complete checkpoint the
        run will resume (:func:`resolve_resume`); settings resolved from the data when the run began
        are taken from it, so a resumed run continues the model it saved."""
        cfg, acc = self.cfg, self.acc
        if cfg.model.frame_time_motion_reference == "data":  # every rank reads the same files: the same number
            cfg.model.frame_time_motion_reference = gate_reference(cfg.data.root, resume_from)
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out)
            save_config(cfg, self.out / "config.yaml")
        acc.wait_for_everyone()
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        with _zero3_init_disabled(acc):  # frozen encoders stay whole: ZeRO-3 partitions only what the engine trains
            c = build_components(cfg.model, cfg.data)
        self.unet, self.vae, self.tokenizer, self.text_encoder, self.noise_scheduler = (
            c.unet, c.vae, c.tokenizer, c.text_encoder, c.noise_scheduler
        )
        self.prior_dir = None
        if cfg.stage == "4d" and c.prior_source is not None:
            self.prior_dir = self.out / PRIOR_FOLDER
            if acc.is_main_process:
                freeze_prior(c.prior_source, self.prior_dir)
                log.info("frozen 3D prior: %s (from %s), linked into every checkpoint", self.prior_dir, c.prior_source)
            acc.wait_for_everyone()
        elif cfg.stage == "4d":
            (log.info if cfg.model.base == "tiny" else log.warning)("no frozen 3D prior (model.prior=%s, model.base is not a stage-1 checkpoint): "
                        "`generate` will use the self prior (this network at m = 0)", cfg.model.prior)
        if cfg.model.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
        self.text_encoder.to(self.device, dtype=self.weight_dtype)
        if self.vae is not None:
            self.vae.to(self.device, dtype=self.weight_dtype)
        self.alphas_cumprod = self.noise_scheduler.alphas_cumprod.to(self.device)
        self.uncond = self.encode_text([""])  # [1, L, D]
        self._setup_data()
        self.unet.train()
        params = [p for p in self.unet.parameters() if p.requires_grad]
        # optim.fused on a plain run (DeepSpeed wraps or replaces the optimizer itself)
        fused = cfg.optim.fused and acc.state.deepspeed_plugin is None and self.device.type in ("cpu", "cuda") and not cfg.optim.use_8bit_adam
        if cfg.optim.fused and not fused:
            log.info("optim.fused: not used here (DeepSpeed, 8-bit Adam or a %s device): per-parameter updates", self.device.type)
        self.optimizer = make_optimizer(params, cfg.optim, fused=fused)
        from diffusers.optimization import get_scheduler

        self.lr_scheduler = get_scheduler(
            cfg.optim.lr_scheduler,
            optimizer=self.optimizer,
            num_warmup_steps=cfg.optim.lr_warmup_steps * self.world,
            num_training_steps=max(cfg.max_steps, 1) * self.world,
        )
        self.ema = None
        if cfg.ema:
            from diffusers.training_utils import EMAModel

            # optim.fused: one multi-tensor update instead of a Python loop over every parameter (same arithmetic)
            warmup = {"use_ema_warmup": True, "power": cfg.ema_power} if cfg.ema_power is not None else {}
            self.ema = EMAModel(self.unet.parameters(), decay=cfg.ema_decay, foreach=fused, model_cls=type(self.unet),
                                model_config=self.unet.config, **warmup)  # fmt: skip
        self.unet, self.optimizer, self.lr_scheduler = acc.prepare(self.unet, self.optimizer, self.lr_scheduler)
        self.model_dtype = next(acc.unwrap_model(self.unet).parameters()).dtype  # bf16/fp16 under DeepSpeed, else fp32
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
        if launcher and launcher != cfg.mixed_precision:
            log.warning("mixed precision %s from the training config (the launcher's %s is overridden)", cfg.mixed_precision, launcher)
        log.info("stage %s, mixed precision %s: UNet weights %s, %s engine", cfg.stage, cfg.mixed_precision,
                 str(self.model_dtype).replace("torch.", ""), "DeepSpeed" if acc.state.deepspeed_plugin else "accelerate")
        if self.ema is not None:
            self.ema.to(self.device)
            acc.register_for_checkpointing(self.ema)
        if acc.is_main_process:
            acc.init_trackers("diffusion4d", config=_flat(config_to_dict(cfg)))

    def _setup_data(self) -> None:
        cfg, acc = self.cfg, self.acc
        d = cfg.data
        if not d.root:
            raise UserError("data.root is not set: pass data.root=<curated dataset folder>")
        cache_dir = None
        if d.cache_latents:
            # "fg": entries carry foreground masks (older caches without them are not reused)
            tag = cache_fingerprint([cfg.stage, d.resolution, d.num_frames, d.frame_sampling, cfg.model.base, model_folder_identity(cfg.model.vae),
                                     cfg.model.text_encoder, "fg"])
            cache_dir = Path(d.cache_dir or self.out / "latent_cache") / tag
        self.dataset = OrbitDataset(d.root, d.resolution, d.num_frames, d.frame_sampling, d.random_orbit, cfg.seed, stage=cfg.stage,
                                    zero_motion_prob=d.zero_motion_prob)
        if cache_dir is not None:
            # every rank encodes its share (item k goes to rank k mod world), then all wait; the
            # barrier's timeout is process_group_timeout_minutes (cache_dir must be on a file system
            # every rank sees: a missing entry after the barrier is reported, not trained on)
            n = build_latent_cache(self.dataset, cache_dir, self.encode_frames, self.encode_text, rank=self.rank, world=self.world)
            log.info("latent cache %s: rank %d wrote %d entries", cache_dir, self.rank, n)
            with open(cache_dir / "build_log.jsonl", "a") as fh:  # O_APPEND: one short line per rank and run
                fh.write(json.dumps({"rank": self.rank, "world": self.world, "written": n}) + "\n")
            acc.wait_for_everyone()
            missing = missing_cache_entries(self.dataset, cache_dir)
            if missing:
                raise UserError(
                    f"latent cache {cache_dir} lacks {len(missing)} entries after every rank built its share "
                    f"(e.g. {missing[0]}): data.cache_dir must be on a file system shared by all ranks"
                )
            self.dataset.cache_dir = cache_dir
        self.batches_per_epoch = len(epoch_batches(len(self.dataset), cfg.batch_size, cfg.seed, 0, self.rank, self.world))

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        from diffusion4d.models import encode_prompts

        return encode_prompts(self.tokenizer, self.text_encoder, list(prompts), device=self.device)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        from diffusion4d.models import encode_frames

        return encode_frames(self.vae, frames.to(self.device, self.weight_dtype)).float()

    def batch_at(self, micro_step: int) -> Dict[str, Any]:
        epoch, offset = divmod(micro_step, self.batches_per_epoch)
        self.dataset.set_epoch(epoch)
        idx = epoch_batches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch, self.rank, self.world)[offset]
        return collate([self.dataset[i] for i in idx])

    # ------------------------------------------------------------------ one micro-step
    def loss_on(self, batch: Dict[str, Any], micro_step: int) -> Dict[str, torch.Tensor]:
        cfg, unet_cfg = self.cfg, self.acc.unwrap_model(self.unet).config
        seed = _seed_for(cfg, micro_step, self.rank)
        torch.manual_seed(seed)  # model-internal dropout
        g = torch.Generator().manual_seed(seed)
        if "latents" in batch:
            z0, z_static = batch["latents"].to(self.device), batch["static_latents"].to(self.device)
            text = batch["text_embeds"].to(self.device)
            foreground = batch.get("foreground")
        else:
            z0, z_static = self.encode_frames(batch["frames"]), self.encode_frames(batch["static_frames"])
            text = self.encode_text(batch["caption"])
            foreground = foreground_fraction(batch["frames"], z0.shape[-2:]) if cfg.loss.foreground_weight > 0 else None
        element_weights = None
        if cfg.loss.foreground_weight > 0:
            if foreground is None:
                raise UserError("loss.foreground_weight needs a latent cache with foreground masks: delete the old cache folder (latent_cache/) and rerun")
            element_weights = L.foreground_weights(foreground.to(self.device), cfg.loss.foreground_weight)
        z0, z_static, text = z0.float(), z_static.float(), text.float()
        if cfg.stage == "4d":
            element_weights = L.combine_weights(element_weights, L.motion_weights(z0, z_static, cfg.loss.motion_weight))
        b = z0.shape[0]
        noise = torch.randn(z0.shape, generator=g).to(self.device)
        lc = cfg.loss
        t = L.sample_timesteps(lc.timestep_sampling, b, self.noise_scheduler.config.num_train_timesteps, g,
                               lc.logit_mean, lc.logit_std, lc.mode_scale).to(self.device)  # fmt: skip
        drop = {k: v.to(self.device) for k, v in L.condition_dropout(b, cfg.dropout, g).items()}
        z_t = L.add_noise(self.alphas_cumprod, z0, noise, t)
        text = torch.where(drop["text"][:, None, None], self.uncond.float().expand_as(text), text)
        motion = L.jitter_motion(batch["motion_magnitude"].to(self.device).float().clone(), cfg.data.motion_jitter, g)
        motion[drop["motion"]] = float("nan")
        kwargs: Dict[str, Any] = {"motion_magnitude": motion, "camera_c2w": batch["c2w"].to(self.device)}
        keep = lambda k: (~drop[k]).to(z0.dtype).reshape(-1, *([1] * (z0.dim() - 1)))  # noqa: E731
        if unet_cfg.static_conditioning:
            kwargs["static_latents"] = z_static * keep("static")
        if unet_cfg.image_conditioning:
            kwargs["image_latents"] = z0[:, :, 0] * keep("image")[..., 0]
        # model inputs in the engine's dtype (DeepSpeed bf16/fp16 casts the weights and runs no
        # autocast; plain accelerate keeps fp32 weights under autocast): the loss stays fp32
        dtype = self.model_dtype
        kwargs = {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() and k != "motion_magnitude" else v) for k, v in kwargs.items()}
        pred = self.unet(z_t.to(dtype), t, text.to(dtype), **kwargs).sample
        return L.total_loss(
            pred.float(), z0=z0, z_t=z_t, noise=noise, z_static=z_static, timesteps=t, alphas_cumprod=self.alphas_cumprod,
            prediction_type=cfg.model.prediction_type, omega=cfg.loss.omega if cfg.stage == "4d" else 0.0,
            mr_reduction=cfg.loss.mr_reduction, mr_weighting=cfg.loss.mr_weighting, snr_gamma=cfg.loss.snr_gamma,
            element_weights=element_weights, frame_deviation_weight=cfg.loss.frame_deviation_weight,
        )

    # ------------------------------------------------------------------ outputs
    def pipeline_unet(self):
        """The UNet as the pipeline folder stores it: EMA weights when kept, whole (gathered) under ZeRO-3."""
        unet = self.acc.unwrap_model(self.unet)
        gathered = getattr(self, "_gathered_state", None)
        if self.ema is None and gathered is None:
            return unet
        copy = type(unet).from_config(unet.config)
        copy.load_state_dict(gathered if gathered is not None else unet.state_dict())
        if self.ema is not None:
            self.ema.copy_to(copy.parameters())
        return copy

    def _zero3(self) -> bool:
        ds = self.acc.state.deepspeed_plugin
        return ds is not None and ds.zero_stage == 3

    def write_pipeline(self, folder: Path) -> None:
        from diffusers import DDIMScheduler

        from diffusion4d.models import save_pipeline_folder

        save_pipeline_folder(
            folder, unet=self.pipeline_unet(), vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
            scheduler=DDIMScheduler.from_config(self.noise_scheduler.config), prior_unet=self.prior_dir,
            training_config=self.cfg, atomic=False,
        )

    def checkpoint(self) -> None:
        with_timing = time.perf_counter()
        # ZeRO-3 shards the parameters: every rank takes part in gathering them (16-bit, see
        # stage3_gather_16bit_weights_on_model_save) before the main process writes the pipeline folder
        self._gathered_state = self.acc.get_state_dict(self.unet) if self._zero3() else None
        try:
            self.last_checkpoint = save_checkpoint(self.acc, self.out, self.step, self.write_pipeline, self.cfg.keep_last)
        finally:
            self._gathered_state = None
        line = json.dumps({"step": self.step, "rank": self.rank, "checksum": _param_checksum(self.acc.unwrap_model(self.unet))})
        with open(self.out / "replica_checksums.jsonl", "a") as fh:  # O_APPEND: one short line per rank
            fh.write(line + "\n")
        self.timings["checkpoint_s"] = self.timings.get("checkpoint_s", 0.0) + time.perf_counter() - with_timing

    def validate(self) -> None:
        ds = self.acc.state.deepspeed_plugin
        if ds is not None and ds.zero_stage == 3:
            log.warning("validation skipped under ZeRO-3 (sharded parameters)")
            return
        if not self.acc.is_main_process:
            return
        from diffusion4d.io import write_video
        from diffusion4d.train.validation import sample_validation

        v = self.cfg.validation
        unet = self.pipeline_unet()
        was_training = unet.training
        unet.eval()
        n = min(v.num_samples, len(self.dataset))
        items = [self.dataset.load_pixels(i, 0) for i in range(n)]
        prompts = [v.prompts[i % len(v.prompts)] if v.prompts else it["caption"] for i, it in enumerate(items)]
        motion = [it["motion_magnitude"] if v.motion_magnitude is None else v.motion_magnitude for it in items]
        frames = sample_validation(
            unet, self.vae, self.text_encoder, self.tokenizer, self.noise_scheduler.config, prompts, motion, items,
            num_inference_steps=v.num_inference_steps, guidance_scale=v.guidance_scale, seed=self.cfg.seed,
        )  # [n, F, 3, H, W]
        folder = self.out / "validation" / f"step-{self.step:06d}"
        images = {}
        for i in range(n):
            write_video(folder / f"{i:02d}.mp4", frames[i].permute(0, 2, 3, 1).numpy(), fps=v.fps)  # [F, H, W, 3] in [0, 1]
            (folder / f"{i:02d}.txt").write_text(prompts[i] + "\n")
            images[f"validation/{i:02d}"] = torch.cat(list(frames[i]), dim=-1).permute(1, 2, 0).cpu().numpy()
        for tracker in self.acc.trackers:
            if tracker.name == "tensorboard":
                for k, img in images.items():
                    tracker.writer.add_image(k, img, self.step, dataformats="HWC")
            elif tracker.name == "wandb":
                import wandb

                tracker.log({f"validation/{i:02d}": wandb.Video(str(folder / f"{i:02d}.mp4")) for i in range(n)}, step=self.step)
        if was_training:
            unet.train()
        log.info("validation videos: %s", folder)

    # ------------------------------------------------------------------ loop
    def train(self, ckpt: Optional[Path] = None) -> Dict[str, Any]:
        """Optimise up to ``cfg.max_steps``, from the complete checkpoint ``ckpt`` when given (the one
        :meth:`setup` was told to resume from)."""
        cfg, acc = self.cfg, self.acc
        if ckpt is not None:
            acc.load_state(str(ckpt / "accelerate_state"))
            self.step = step_of(ckpt)
            self.last_checkpoint = ckpt
            log.info("resumed from %s (step %d)", ckpt, self.step)
        losses_path = self.out / "losses.jsonl"
        if acc.is_main_process:
            # a killed run may have logged steps after its last checkpoint: they are replayed now
            dropped = truncate_losses(losses_path, self.step)
            if dropped:
                log.info("losses.jsonl: dropped %d row(s) after step %d (replayed from the checkpoint)", dropped, self.step)
        acc.wait_for_everyone()
        bar = progress(total=cfg.max_steps, desc="train", unit="step")
        bar.update(self.step)
        history = []
        start = time.perf_counter()
        accum = cfg.gradient_accumulation_steps
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()
            totals = {"loss": 0.0, "ldm": 0.0, "mr": 0.0}
            for micro in range(accum):
                micro_step = self.step * accum + micro
                batch = self.batch_at(micro_step)
                with acc.accumulate(self.unet):
                    out = self.loss_on(batch, micro_step)
                    value = acc.gather(out["loss"].detach()[None]).mean().item()
                    check_finite(value, self.step + 1, self.last_checkpoint)
                    acc.backward(out["loss"])
                    if acc.sync_gradients and cfg.optim.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.unet.parameters(), cfg.optim.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                totals["loss"] += value / accum
                totals["ldm"] += acc.gather(out["ldm"][None]).mean().item() / accum
                totals["mr"] += acc.gather(out["mr"][None]).mean().item() / accum
            if self.ema is not None:
                self.ema.step(self.acc.unwrap_model(self.unet).parameters())
            self.step += 1
            record = {"step": self.step, **totals, "lr": self.lr_scheduler.get_last_lr()[0], "step_s": time.perf_counter() - t0}
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{totals['loss']:.4f}")
            if acc.is_main_process:
                with open(losses_path, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
                if self.step % cfg.log_every == 0:
                    acc.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=self.step)
            last = self.step == cfg.max_steps
            if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or last:
                self.checkpoint()
            if (cfg.validation.every and self.step % cfg.validation.every == 0) or (last and cfg.validation.at_end):
                self.validate()
        bar.close()
        summary = TrainSummary(
            steps=self.step,
            first_loss=first_logged_loss(losses_path, history),
            last_loss=history[-1]["loss"] if history else None,
            seconds=time.perf_counter() - start,
            checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
            world_size=self.world,
            stage=cfg.stage,
            timings=dict(self.timings),
        )
        if acc.is_main_process:
            summary.write(self.out / TRAIN_SUMMARY_FILE)
        acc.end_training()
        return {"summary": summary.to_json(), "history": history}


LOCK_FILE = ".train.lock"


@contextlib.contextmanager
def output_lock(output_dir: Path, is_main: bool):
    """One training run per output folder: the main process holds ``<output_dir>/.train.lock``
    (a ``filelock``) for the whole run; a second run on the same folder refuses with one line."""
    if not is_main:
        yield
        return
    from filelock import FileLock, Timeout

    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another training run is writing to {output_dir} (lock {output_dir / LOCK_FILE} is held); "
                        "wait for it to finish or choose another output_dir") from None
    try:
        yield
    finally:
        lock.release()


def run(cfg: TrainConfig, resume: Optional[str] = None) -> Dict[str, Any]:
    """Train according to ``cfg``; returns ``{"summary": ..., "history": [per-step records]}``."""
    from diffusion4d.io.paths import check_output_dir

    check_output_dir(cfg.output_dir, "output_dir")
    trainer = Trainer(cfg)
    with output_lock(trainer.out, trainer.acc.is_main_process):
        ckpt = resolve_resume(trainer.out, resume)
        trainer.setup(resume_from=ckpt)
        return trainer.train(ckpt)
