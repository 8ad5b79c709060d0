"""``diffusion4d generate``: text / image / static 3D asset -> orbital 4D video (+ 4D Gaussians).

Output layout (contract 4), one folder per sample::

    OUT/<sample>/dynamic/000.png ... + cameras.json   the orbital video as a clip
    OUT/<sample>/static/ ...                          the rendered static orbit (--static-3d only)
    OUT/<sample>/input.png                            the prepared input image (--image only)
    OUT/<sample>/orbit.mp4, orbit.gif                 the video
    OUT/<sample>/generation.json                      every parameter, the seed, timings
    OUT/<sample>/recon/ ...                           4D Gaussians (--reconstruct)

Sample names: ``<name>``, ``<name>_s<k>`` for ``--num-samples K > 1`` (seed ``S + k``), and
``_m<m>`` for each value of a ``--motion`` list (same seed for every value, so the samples
differ only by the motion magnitude; ``<m>`` has two decimals, more when the values need them).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from diffusion4d.app.generate_config import GenerateConfig
from diffusion4d.errors import UserError
from diffusion4d.logging_utils import get_logger, timed

COMMAND = "generate"
HELP = "generate orbital 4D videos from text, an image or a static 3D asset with a trained checkpoint"

logger = get_logger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="checkpoint folder (diffusers pipeline layout)")
    inputs = parser.add_argument_group("inputs (at least one; any combination the model was trained for)")
    inputs.add_argument("--prompt", metavar="TEXT", help="text prompt")
    inputs.add_argument("--image", metavar="FILE", help="first view: RGBA (alpha = mask) or RGB on a plain background")
    inputs.add_argument("--static-3d", dest="static_3d", metavar="ASSET", help="3D asset (.glb/.gltf...): its static orbit conditions the video")
    parser.add_argument("--motion", metavar="M", help="motion magnitude m, or a comma list (0,0.5,1) for a sweep; default: null (model's choice)")
    parser.add_argument("--name", metavar="NAME", help="sample name (default: from the prompt / file name)")
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--config", metavar="NAME|YAML", default=None, help="settings preset: a shipped name (default: the paper's DDIM 50, w 7 / 0.5; fast: DPM-Solver++ 20) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings overrides key=value (e.g. steps=20 guidance_scale=5), as every command takes them")
    s = parser.add_argument_group("settings (each overrides the preset's value)")
    s.add_argument("--guidance", nargs=2, type=float, default=None, metavar=("W1", "W2"), help="3D-aware CFG weights w1 (text/motion) and w2 (3D prior); preset: 7.0 0.5")
    s.add_argument("--prior", choices=("auto", "separate", "self"), default=None, help="3D-aware prior for w2: the checkpoint's frozen stage-1 prior_unet (separate), this network at m=0 (self, a variant), or auto: separate when the checkpoint has one (preset: auto)")
    s.add_argument("--scheduler", choices=("ddim", "dpm"), default=None, help="sampler: DDIM or DPM-Solver++ (preset: ddim)")
    s.add_argument("--steps", type=int, default=None, metavar="N", help="sampling steps (preset: 50; 20 for dpm when the preset leaves it unset)")
    s.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (sample k uses S + k; preset: 0)")
    s.add_argument("--num-samples", type=int, default=None, metavar="K", help="samples per input (preset: 1)")
    s.add_argument("--frames", type=int, default=None, metavar="F", help="frames (default: the model's)")
    s.add_argument("--resolution", type=int, default=None, metavar="PX", help="frame size (default: the model's)")
    s.add_argument("--elevation", type=float, default=None, help="orbit elevation in degrees (preset: 0)")
    s.add_argument("--start-azimuth", type=float, default=None, help="azimuth of the first frame in degrees (preset: 0, the front)")
    s.add_argument("--fps", type=float, default=None, help="frame rate of orbit.mp4/gif (preset: 8)")
    s.add_argument("--renderer", default=None, help="renderer for --static-3d (fast | blender; preset: fast)")
    s.add_argument("--no-batch-branches", action="store_const", const=True, default=None, help="run the guidance branches one by one (less memory)")
    s.add_argument("--reconstruct", action="store_const", const=True, default=None, help="fit 4D Gaussians to each sample (recon)")
    s.add_argument("--recon-preset", default=None, help="recon preset for --reconstruct (preset: default)")
    s.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    s.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None, help="weights and sampling dtype (preset: float32; checkpoints trained under DeepSpeed bf16 store bf16 weights, loaded in this dtype)")


#: flag (argparse dest) -> GenerateConfig field; --guidance sets two fields
_FLAG_FIELDS = {
    "prior": "prior", "scheduler": "scheduler", "steps": "steps", "seed": "seed", "num_samples": "num_samples",
    "frames": "frames", "resolution": "resolution", "elevation": "elevation", "start_azimuth": "start_azimuth",
    "fps": "fps", "renderer": "renderer", "reconstruct": "reconstruct", "recon_preset": "recon_preset",
    "device": "device", "dtype": "dtype",
}


def resolve_settings(args: argparse.Namespace) -> GenerateConfig:
    """Preset (``--config``, default ``default``) <- ``key=value`` overrides <- the flags given; the
    resolved values are written back onto ``args`` (the command reads them there)."""
    from diffusion4d.config import ConfigError, load_config
    from diffusion4d.presets import resolve_preset

    overrides = list(getattr(args, "overrides", None) or [])
    for dest, key in _FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "guidance", None) is not None:
        overrides += [f"guidance_scale={args.guidance[0]!r}", f"prior_guidance_scale={args.guidance[1]!r}"]
    if getattr(args, "no_batch_branches", None):
        overrides.append("batch_branches=false")
    try:
        cfg = load_config(GenerateConfig, resolve_preset("generate", args.config or "default"), overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None
    for dest, key in _FLAG_FIELDS.items():
        setattr(args, dest, getattr(cfg, key))
    args.guidance = (cfg.guidance_scale, cfg.prior_guidance_scale)
    args.no_batch_branches = not cfg.batch_branches
    return cfg


# ---------------------------------------------------------------------------- argument parsing
def parse_motion(text: Optional[str]) -> List[Optional[float]]:
    """``None`` -> ``[None]`` (null motion); ``"0.5"`` -> ``[0.5]``; ``"0,0.5,1"`` -> three values."""
    if text is None or text.strip().lower() in ("", "none", "null"):
        return [None]
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UserError(f"--motion: {part.strip()!r} is not a number (expected M or a list like 0,0.5,1)") from None
        if not np.isfinite(value) or value < 0:
            raise UserError(f"--motion: values must be finite and >= 0, got {part.strip()}")
        values.append(value)
    return values


def slugify(text: str, max_len: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:max_len].strip("_")
    return slug or "sample"


def motion_labels(motions: List[Optional[float]]) -> Dict[float, str]:
    """Each requested magnitude's label in a sample name, all with the same number of decimals:
    two (``0.50``), or as many (up to 8) as the values need to be written exactly, so close values
    stay apart (``0.0036`` and ``0.0072`` would both be ``0.00`` and the second sample would
    overwrite the first). UserError if a value is repeated or two values agree to 8 decimals."""
    values = [m for m in motions if m is not None]
    if len(set(values)) != len(values):
        repeated = sorted({m for m in values if values.count(m) > 1})
        raise UserError(f"--motion lists {', '.join(f'{m:g}' for m in repeated)} more than once")
    decimals = max([2] + [next((d for d in range(2, 9) if abs(float(f"{m:.{d}f}") - m) < 1e-12), 8) for m in values])
    labels = {m: f"{m:.{decimals}f}" for m in values}
    if len(set(labels.values())) != len(values):
        raise UserError("--motion values must differ in their first 8 decimals")
    return labels


def sample_names(base: str, num_samples: int, motions: List[Optional[float]], motion_list: bool) -> List[tuple]:
    """``[(name, sample_index, motion)]`` in generation order; names are distinct (see :func:`motion_labels`)."""
    labels = motion_labels(motions) if motion_list else {}
    out = []
    for k in range(num_samples):
        for m in motions:
            name = base
            if num_samples > 1:
                name += f"_s{k}"
            if motion_list:
                name += f"_m{labels[m]}"
            out.append((name, k, m))
    return out


def sample_base(args: argparse.Namespace) -> str:
    """The sample name: ``--name`` (must follow the safe-name rule of :mod:`diffusion4d.io.names`)
    or a slug of the prompt / input file name."""
    from diffusion4d.io.names import safe_name

    if args.name is not None:
        return safe_name(args.name, "--name")
    return slugify(args.prompt or Path(args.image or args.static_3d or "sample").stem)


def check_device(device: Optional[str]) -> None:
    """UserError unless ``device`` (None: automatic) names a torch device this machine has."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(f"--device {device!r} is not a device (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError(f"--device {device}: MPS is not available on this machine (use --device cpu)")
    elif dev.type != "cpu":
        raise UserError(f"--device {device}: device type {dev.type!r} is not supported (cpu, cuda, cuda:N, mps)")


def check_arguments(args: argparse.Namespace) -> None:
    """Checks of the arguments alone (no model loaded, nothing written yet): UserError on bad input."""
    import math

    from diffusion4d.io.paths import check_output_dir

    if args.prompt is not None and not args.prompt.strip():
        raise UserError("--prompt is empty")
    for flag, value in (("--elevation", args.elevation), ("--start-azimuth", args.start_azimuth), ("--fps", args.fps)):
        if not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, got {value}")
    if not -90.0 < args.elevation < 90.0:
        raise UserError(f"--elevation must lie strictly between -90 and 90 degrees, got {args.elevation:g}")
    if args.fps <= 0:
        raise UserError(f"--fps must be > 0, got {args.fps:g}")
    if not all(math.isfinite(w) for w in args.guidance):
        raise UserError(f"--guidance weights must be finite numbers, got {args.guidance[0]} {args.guidance[1]}")
    sample_base(args)
    check_device(args.device)
    check_output_dir(args.output, "--output")


def check_sample_names(output: Path, names: List[str]) -> None:
    """Every sample folder ``output/<name>`` stays inside ``output`` (UserError otherwise)."""
    from diffusion4d.io.names import join_inside

    for name in names:
        join_inside(output, name, "sample name")


# ---------------------------------------------------------------------------- checkpoint inspection
def resolve_prior(choice: str, info: Dict[str, Any]) -> str:
    """``auto`` -> ``separate`` when the checkpoint carries a frozen prior, else ``self``."""
    if choice == "auto":
        return "separate" if info["has_prior"] else "self"
    return choice


def check_conditions(args: argparse.Namespace, info: Dict[str, Any], motions: List[Optional[float]]) -> None:
    if args.prompt is None and args.image is None and args.static_3d is None:
        raise UserError("give at least one input: --prompt, --image or --static-3d")
    if args.image is not None and not info["image_conditioning"]:
        raise UserError(f"the model in {args.model} was not trained for image conditioning (--image)")
    if args.static_3d is not None and not info["static_conditioning"]:
        raise UserError(f"the model in {args.model} was not trained for static-3D conditioning (--static-3d)")
    if any(m is not None for m in motions) and not info["motion_conditioning"]:
        raise UserError(f"the model in {args.model} has no motion-magnitude condition (--motion)")
    if args.prior == "separate" and args.guidance[1] != 0.0 and not info["has_prior"]:
        raise UserError(f"--prior separate needs a prior_unet in {args.model}; use --prior self")
    if args.num_samples < 1:
        raise UserError("--num-samples must be >= 1")
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be >= 1")
    if args.resolution is not None and args.resolution < 8:
        raise UserError("--resolution must be >= 8")
    if args.frames is not None and args.frames < 2:
        raise UserError("--frames must be >= 2")


# ---------------------------------------------------------------------------- inputs
def render_static_orbit(asset: str, num_frames: int, size: int, args: argparse.Namespace):
    """Render the asset's static orbit (curation renderer, contract 2) -> (uint8 [F, H, W, 4], cameras)."""
    from diffusion4d.cameras import orbit_trajectory

    path = Path(asset)
    if not path.is_file():
        raise UserError(f"3D asset not found: {asset}")
    try:
        from diffusion4d.data_curation import render_clip
    except ImportError as err:
        raise UserError(f"--static-3d needs the data_curation package (renderer): {err}") from None
    cameras = orbit_trajectory(
        "static", num_frames, start_azimuth=args.start_azimuth, elevation=args.elevation, width=size, height=size
    )
    try:
        frames = render_clip(str(path), cameras, renderer=args.renderer)
    except UserError:
        raise
    except Exception as err:  # any asset/renderer failure is the user's input failing: one line, exit 2
        logger.debug("rendering %s failed", asset, exc_info=True)
        raise UserError(f"cannot render 3D asset {asset}: {type(err).__name__}: {err}") from None
    frames = np.asarray(frames)
    if frames.shape != (num_frames, size, size, 4) or frames.dtype != np.uint8:
        raise UserError(f"rendering {asset} returned frames {frames.dtype} {frames.shape}, expected uint8 {(num_frames, size, size, 4)}")
    if frames[..., 3].max() == 0:
        raise UserError(f"3D asset {asset} rendered empty (nothing in view)")
    return frames, cameras


def load_pipeline(model_dir: Path, device: str, scheduler: str, dtype: str = "float32"):
    from diffusion4d.pipelines import Diffusion4DPipeline
    from diffusion4d.pipelines.schedulers import make_scheduler

    if os.environ.get("DIFFUSION4D_NO_PROGRESS") == "1":
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    try:
        import warnings

        import torch

        with warnings.catch_warnings():  # newer diffusers rename torch_dtype to dtype; older ones know only torch_dtype
            warnings.simplefilter("ignore", FutureWarning)
            pipe = Diffusion4DPipeline.from_pretrained(str(model_dir), torch_dtype=getattr(torch, dtype))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"cannot load the checkpoint in {model_dir}: {type(err).__name__}: {first}") from None
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    return pipe.to(device)


# ---------------------------------------------------------------------------- outputs
def to_uint8(frames: np.ndarray) -> np.ndarray:
    """float [..., 3] in [0, 1] -> uint8."""
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_sample(folder: Path, frames_u8: np.ndarray, cameras, fps: float) -> Dict[str, str]:
    """The sample's clip (``dynamic/``, contract 2) and its videos; returns the outputs entry of
    :class:`~diffusion4d.io.records.GenerationRecord`."""
    from diffusion4d.io import write_clip, write_video

    folder.mkdir(parents=True, exist_ok=True)
    write_clip(folder / "dynamic", frames_u8, cameras)
    write_video(folder / "orbit.mp4", frames_u8, fps=fps)
    write_video(folder / "orbit.gif", frames_u8, fps=fps)
    return {"clip": "dynamic", "mp4": "orbit.mp4", "gif": "orbit.gif"}


def run_reconstruction(clip_dir: Path, output_dir: Path, preset: str, device: str) -> dict:
    try:
        from diffusion4d.recon import reconstruct
    except ImportError as err:
        raise UserError(f"--reconstruct needs the recon package, which is not available: {err}") from None
    return reconstruct(str(clip_dir), str(output_dir), preset=preset, device=device)


# ---------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    import torch

    import diffusers

    import diffusion4d
    from diffusion4d.io import frames_to_float, write_clip
    from diffusion4d.io.records import GENERATION_FILE, GenerationRecord
    from diffusion4d.pipelines import ConditionError
    from diffusion4d.pipelines.schedulers import DEFAULT_STEPS

    resolve_settings(args)
    check_arguments(args)
    timings: Dict[str, float] = {}
    model_dir = Path(args.model)
    motions = parse_motion(args.motion)
    motion_list = args.motion is not None and "," in args.motion
    from diffusion4d.models.checkpoint import checkpoint_info

    info = checkpoint_info(model_dir)
    args.prior = resolve_prior(args.prior, info)
    check_conditions(args, info, motions)
    num_frames = args.frames or info["num_frames"]
    size = args.resolution or info["resolution"]
    if size is None:
        raise UserError(f"the model in {model_dir} has no sample_size: pass --resolution")
    steps = args.steps or DEFAULT_STEPS[args.scheduler]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    output = Path(args.output)

    # 1. inputs (cheap failures before the model loads)
    image = static_frames = None
    with timed(timings, "prepare_inputs"):
        if args.image is not None:
            from diffusion4d.image_prep import load_image, prepare_image

            image = prepare_image(load_image(args.image), size=size)
        if args.static_3d is not None:
            static_frames, static_cameras = render_static_orbit(args.static_3d, num_frames, size, args)
    base = sample_base(args)
    check_sample_names(output, [n for n, _, _ in sample_names(base, args.num_samples, motions, motion_list)])

    # 2. model
    with timed(timings, "load_model"):
        pipe = load_pipeline(model_dir, device, args.scheduler, getattr(args, "dtype", "float32"))

    # 3. samples
    written = []
    for name, k, m in sample_names(base, args.num_samples, motions, motion_list):
        seed = args.seed + k
        sample_timings = dict(timings)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        logger.info("generating %s (seed %d, motion %s)", name, seed, m)
        try:
            out = pipe(
                prompt=args.prompt,
                image=image,
                static_orbit=None if static_frames is None else frames_to_float(static_frames),
                motion_magnitude=m,
                num_frames=num_frames,
                height=size,
                width=size,
                num_inference_steps=steps,
                guidance_scale=args.guidance[0],
                prior_guidance_scale=args.guidance[1],
                prior=args.prior,
                generator=generator,
                output_type="np",
                elevation=args.elevation,
                start_azimuth=args.start_azimuth,
                batch_branches=not args.no_batch_branches,
            )
        except ConditionError as err:
            raise UserError(str(err)) from None
        sample_timings.update({f"sampling_{key}": v for key, v in out.timings.items() if key != "steps"})
        folder = output / name
        with timed(sample_timings, "write"):
            outputs = write_sample(folder, to_uint8(out.frames[0]), out.cameras, args.fps)
            if static_frames is not None:
                write_clip(folder / "static", static_frames, static_cameras)
                outputs["static_clip"] = "static"
            if image is not None:
                from PIL import Image

                Image.fromarray(image).save(folder / "input.png")
                outputs["input_image"] = "input.png"
        record = GenerationRecord(
            sample=name,
            model=str(model_dir.resolve()),
            prompt=args.prompt,
            image=None if args.image is None else str(Path(args.image).resolve()),
            static_3d=None if args.static_3d is None else str(Path(args.static_3d).resolve()),
            motion_magnitude=m,
            guidance_scale=args.guidance[0],
            prior_guidance_scale=args.guidance[1],
            prior=args.prior,
            scheduler=args.scheduler,
            num_inference_steps=steps,
            seed=seed,
            sample_index=k,
            num_frames=num_frames,
            height=size,
            width=size,
            elevation=args.elevation,
            start_azimuth=args.start_azimuth,
            fps=args.fps,
            batch_branches=not args.no_batch_branches,
            device=device,
            dtype=getattr(args, "dtype", "float32"),
            renderer=args.renderer if args.static_3d else None,
            versions={"diffusion4d": diffusion4d.__version__, "diffusers": diffusers.__version__, "torch": torch.__version__},
            created=datetime.datetime.now().isoformat(timespec="seconds"),
            outputs=outputs,
            timings=sample_timings,
        )
        record.write(folder / GENERATION_FILE)
        if args.reconstruct:
            start = time.perf_counter()
            metrics = run_reconstruction(folder / "dynamic", folder / "recon", args.recon_preset, device)
            record.timings["reconstruct"] = time.perf_counter() - start
            record.outputs["recon"] = "recon"
            record.recon_metrics = metrics
            record.write(folder / GENERATION_FILE)
        written.append(folder)
        print(folder)
    return 0
