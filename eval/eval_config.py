"""``EvalConfig``: the options of one evaluation run (``diffusion4d evaluate`` / ``eval/run_metrics.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from diffusion4d.errors import UserError
from diffusion4d import weights as W
from diffusion4d.eval.results import ALL_METRICS
from diffusion4d.eval.tables import FORMATS

PIXEL_METRICS = ("psnr", "ssim", "lpips", "iou", "view_iou")
REFERENCES = ("gt", "image", "text")


@dataclass
class EvalConfig:
    """Options of one evaluation run (the command-line flags, one to one)."""

    preds: Dict[str, str]  # method name -> folder of <uid>/<mode> clips
    gt: Optional[str] = None  # folder of ground-truth <uid>/<mode> clips
    output: Optional[str] = None  # folder for the tables (None: do not write)
    reference: str = "gt"  # CLIP-F/CLIP-O reference: gt renders, the input image, or the text prompt
    metrics: List[str] = field(default_factory=lambda: list(ALL_METRICS))  # metrics to compute
    weights_dir: Optional[str] = None  # folder holding weight files (see diffusion4d.weights)
    device: str = "auto"  # cpu | cuda | auto
    formats: List[str] = field(default_factory=lambda: list(FORMATS))  # table formats to write
    strict: bool = False  # missing weights -> UserError (exit 2) instead of n/a
    clip_model: str = W.DEFAULT_CLIP_MODEL  # hub id or folder of a transformers CLIP
    lpips_net: str = "alex"  # LPIPS backbone: alex | vgg
    fvd_frames: str = "resample"  # 16-frame clip rule: resample | first
    fvd_resolution: int = 224  # I3D input size (224 in the standard protocol)
    mode: str = "dynamic"  # clip folder name inside each <uid>/
    task: str = "4D generation"  # table caption

    def validate(self) -> None:
        if not self.preds:
            raise UserError("no predictions: give at least one --pred NAME=DIR")
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown:
            raise UserError(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(ALL_METRICS)}")
        if not self.metrics:
            raise UserError("no metrics requested")
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise UserError(f"unknown format(s) {', '.join(bad)}; valid: {', '.join(FORMATS)}")
        if self.reference not in REFERENCES:
            raise UserError(f"unknown --reference {self.reference!r}; valid: {', '.join(REFERENCES)}")
        if self.lpips_net not in W.LPIPS_BACKBONES:
            raise UserError(f"unknown LPIPS net {self.lpips_net!r}; valid: {', '.join(W.LPIPS_BACKBONES)}")
        if self.fvd_frames not in ("resample", "first"):
            raise UserError(f"unknown FVD frame rule {self.fvd_frames!r}; valid: resample, first")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"unknown device {self.device!r}; valid: auto, cpu, cuda")
        for name, folder in self.preds.items():
            if not Path(folder).is_dir():
                raise UserError(f"--pred {name}={folder}: no such folder")
        if self.needs_gt() and not self.gt:
            raise UserError(f"metrics {', '.join(self.gt_metrics())} need --gt DIR (ground-truth clips)")
        if self.gt and not Path(self.gt).is_dir():
            raise UserError(f"--gt {self.gt}: no such folder")

    def gt_metrics(self) -> List[str]:
        need = set(PIXEL_METRICS) | {"fvd", "colour"}
        if self.reference in ("gt", "image"):
            need |= {"clip_f", "clip_o"}
        return [m for m in self.metrics if m in need]

    def needs_gt(self) -> bool:
        return bool(self.gt_metrics())
