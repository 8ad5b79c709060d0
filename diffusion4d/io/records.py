"""Records one stage writes for another, as dataclasses (docs/contracts.md, "Records").

* :class:`GenerationRecord`: ``<sample>/generation.json``, written by ``diffusion4d generate``,
  read by ``diffusion4d evaluate`` (prompt, input image, timings) and the demo report.
* :class:`TrainSummary`: ``<output_dir>/train_summary.json``, written by the trainer at the end
  of a run, read by the demo report and benchmarks.
* :class:`ReconMetrics`: ``<recon output>/metrics.json``, written by ``diffusion4d reconstruct``,
  read by ``diffusion4d evaluate`` (timings), generate's ``--reconstruct``, the demo report and
  benchmarks.
* :class:`DemoState`: ``<demo output>/demo_state.json``, the demo's completed stages.

Writers build the dataclass and call :meth:`write`; readers call :meth:`read`, which validates
the file (a JSON object with the required fields of the right types) and raises
:class:`~diffusion4d.io.InvalidInputError` naming the file and the field otherwise. Unknown keys
are kept in ``extra`` (a newer writer's fields survive an older reader).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Type, TypeVar, Union

from diffusion4d.io.clip import atomic_write_json, read_json
from diffusion4d.io.errors import InvalidInputError

T = TypeVar("T", bound="_Record")
PathLike = Union[str, Path]

GENERATION_FILE = "generation.json"
TRAIN_SUMMARY_FILE = "train_summary.json"
RECON_METRICS_FILE = "metrics.json"
DEMO_STATE_FILE = "demo_state.json"


def _type_ok(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin is Union:
        return any(_type_ok(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if origin is list or tp is list:
        return isinstance(value, list)
    return isinstance(value, tp)


@dataclass
class _Record:
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)  # keys this version does not know

    def to_json(self) -> Dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data.update({k: v for k, v in self.extra.items() if k not in data})
        return data

    def write(self, path: PathLike) -> Path:
        atomic_write_json(path, self.to_json())
        return Path(path)

    @classmethod
    def from_json(cls: Type[T], data: Any, where: str = "record") -> T:
        if not isinstance(data, dict):
            raise InvalidInputError(f"{where}: must hold a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
            if f.name not in data:
                if required:
                    raise InvalidInputError(f"{where}: missing field {f.name!r}")
                continue
            value = data[f.name]
            if not _type_ok(value, hints[f.name]):
                raise InvalidInputError(f"{where}: field {f.name!r} must be {hints[f.name]}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidInputError(f"{where}: field {f.name!r} is not finite ({value})")
            values[f.name] = value
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def read(cls: Type[T], path: PathLike) -> Optional[T]:
        """The record in ``path``; None when the file does not exist; InvalidInputError when it is damaged."""
        path = Path(path)
        if not path.is_file():
            return None
        return cls.from_json(read_json(path), str(path))


@dataclass
class GenerationRecord(_Record):
    """``generation.json``: how one generated sample was made (one per sample folder)."""

    sample: str = ""  # sample folder name
    model: str = ""  # checkpoint folder (absolute)
    prompt: Optional[str] = None  # text prompt (None: image / static-3D only)
    image: Optional[str] = None  # conditioning image path (absolute) or None
    static_3d: Optional[str] = None  # 3D asset whose static orbit conditioned the sample, or None
    motion_magnitude: Optional[float] = None  # requested m (None: the null motion embedding)
    guidance_scale: float = 7.0  # w1 of Eq. 3
    prior_guidance_scale: float = 0.5  # w2 of Eq. 3
    prior: str = "separate"  # the prior that was used: separate (stage-1 prior_unet) | self
    scheduler: str = "ddim"  # ddim | dpm
    num_inference_steps: int = 50  # sampler steps
    seed: int = 0  # noise seed
    sample_index: int = 0  # k of --num-samples (seed = base seed + k)
    num_frames: int = 0  # frames of the orbit
    height: int = 0  # frame height (pixels)
    width: int = 0  # frame width (pixels)
    elevation: float = 0.0  # orbit elevation (degrees)
    start_azimuth: float = 0.0  # azimuth of frame 0 (degrees)
    fps: float = 8.0  # frame rate of orbit.mp4 / orbit.gif
    batch_branches: bool = True  # guidance branches batched in one forward
    device: str = "cpu"  # torch device
    dtype: str = "float32"  # weights / sampling dtype
    renderer: Optional[str] = None  # renderer of the static orbit (--static-3d) or None
    versions: Dict[str, Any] = field(default_factory=dict)  # diffusion4d / diffusers / torch versions
    created: str = ""  # ISO time
    outputs: Dict[str, Any] = field(default_factory=dict)  # file names in the sample folder (clip, mp4, gif, ...)
    timings: Dict[str, Any] = field(default_factory=dict)  # seconds per phase
    recon_metrics: Optional[Dict[str, Any]] = None  # metrics.json of --reconstruct, when it ran

    def seconds(self) -> Optional[float]:
        """Wall time of the sample: the sum of its recorded phases (None when none were recorded)."""
        values = [float(v) for v in self.timings.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return float(sum(values)) if values else None


@dataclass
class TrainSummary(_Record):
    """``train_summary.json``: the outcome of a training run."""

    steps: int = 0  # optimisation steps done (including those of a resumed-from checkpoint)
    first_loss: Optional[float] = None  # the run's first logged loss (step 1)
    last_loss: Optional[float] = None  # the loss of the last step
    seconds: float = 0.0  # wall time of this process's training loop
    checkpoint: Optional[str] = None  # the last checkpoint folder
    world_size: int = 1  # processes
    stage: str = "4d"  # prior3d | 4d
    timings: Dict[str, Any] = field(default_factory=dict)  # extra seconds (checkpoint_s, ...)


@dataclass
class ReconMetrics(_Record):
    """``metrics.json`` of a reconstruction: its quality on the input clip and how it was made.

    PSNR/SSIM are :mod:`diffusion4d.metrics` (per frame, then the mean), on the frames of the fitted
    clip; ``*_heldout`` on the frames left out of the fit (None without ``holdout``).
    """

    clip: str = ""  # the fitted clip folder
    static_clip: Optional[str] = None  # the static orbit used by the coarse stage, or None
    mode: str = "dynamic"  # dynamic | freeze_time
    preset: str = "default"  # reconstruction preset (name or path)
    backend: str = "torch"  # rasteriser backend: gsplat | cpu | torch
    device: str = "cpu"  # torch device
    resolution: list = field(default_factory=list)  # [width, height] in pixels
    num_frames: int = 0  # frames of the clip
    num_gaussians: int = 0  # Gaussians of the fitted model
    holdout: int = 0  # every holdout-th frame left out (0: none)
    heldout_frames: list = field(default_factory=list)  # indices of the held-out frames
    psnr_heldout: Optional[float] = None  # dB, mean over held-out frames
    ssim_heldout: Optional[float] = None  # mean over held-out frames
    psnr_heldout_per_frame: list = field(default_factory=list)  # dB per held-out frame
    psnr_train: Optional[float] = None  # dB, mean over the fitted frames
    ssim_train: Optional[float] = None  # mean over the fitted frames
    iterations: Dict[str, Any] = field(default_factory=dict)  # coarse / fine / offsets steps
    temporal_source: Optional[str] = None  # where the time axis came from
    lpips_loss: bool = False  # whether the LPIPS loss term was active
    timings: Dict[str, Any] = field(default_factory=dict)  # seconds per stage; their sum is the total
    resumed: list = field(default_factory=list)  # stages taken from a saved result (e.g. ["coarse"])
    rigid_trial: Optional[Dict[str, Any]] = None  # the fine stage's rigid-knot trial: {"rigid": loss, "local": loss, "used": bool}

    def seconds(self) -> Optional[float]:
        """Wall time of the reconstruction: ``timings["total"]``, else the sum of the stage times."""
        numbers = {k: float(v) for k, v in self.timings.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if "total" in numbers:
            return numbers["total"]
        return float(sum(numbers.values())) if numbers else None


@dataclass
class DemoState(_Record):
    """``demo_state.json``: ``stages`` maps a stage name to ``{"status": "done", "seconds": s, ...}``."""

    stages: Dict[str, Any] = field(default_factory=dict)


__all__ = [
    "DEMO_STATE_FILE", "GENERATION_FILE", "RECON_METRICS_FILE", "TRAIN_SUMMARY_FILE",
    "DemoState", "GenerationRecord", "ReconMetrics", "TrainSummary",
]
