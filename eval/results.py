"""The in-memory result of an evaluation run, shared by the table writers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

#: every metric, in table order.
ALL_METRICS = ("clip_f", "clip_o", "clip_text", "psnr", "ssim", "lpips", "iou", "view_iou", "colour", "fvd", "motion", "time")


@dataclass(frozen=True)
class MetricInfo:
    label: str  # column title
    higher_is_better: bool
    decimals: int
    per_asset: bool  # False: one value per method (FVD, motion control)


METRIC_INFO: Dict[str, MetricInfo] = {
    "clip_f": MetricInfo("CLIP-F", True, 3, True),
    "clip_o": MetricInfo("CLIP-O", True, 3, True),
    "clip_text": MetricInfo("CLIP-T", True, 3, True),
    "psnr": MetricInfo("PSNR", True, 2, True),
    "ssim": MetricInfo("SSIM", True, 3, True),
    "lpips": MetricInfo("LPIPS", False, 3, True),
    "iou": MetricInfo("Silhouette IoU", True, 3, True),
    "view_iou": MetricInfo("View IoU gain", True, 3, True),
    "colour": MetricInfo("Colour match", True, 3, False),
    "fvd": MetricInfo("FVD", False, 1, False),
    "motion": MetricInfo("Motion rho", True, 3, False),
    "time": MetricInfo("Time (s)", False, 1, True),
}


@dataclass
class Summary:
    """A method's aggregate for one metric: mean and population std over assets (or groups)."""

    mean: float
    std: Optional[float]  # None: one value per method (FVD), or an infinite mean (PSNR of identical frames)
    n: int  # assets (groups for motion, clips per set for FVD) behind the value

    def to_json(self) -> Dict[str, Any]:
        return {"mean": json_number(self.mean), "std": json_number(self.std), "n": self.n}


def json_number(value: Optional[float]) -> Any:
    """JSON has no inf/nan: they are written as the strings "inf", "-inf", "nan"; None stays null."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def summarize(values: List[Optional[float]]) -> Optional[Summary]:
    """Mean and population std of the non-None values (inf propagates to the mean); None if none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    mean = sum(vals) / len(vals)
    if any(math.isinf(v) for v in vals):
        return Summary(mean, None, len(vals))  # no meaningful spread around an infinite mean
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    return Summary(mean, std, len(vals))


@dataclass
class EvalResult:
    """Everything a run measured.

    ``per_asset[method][uid][metric]`` is a float or None (not measured: see ``na``);
    ``summary[method][metric]`` a :class:`Summary` or None; ``na[method][metric]`` the reason a
    metric is missing for a method (also summarised in ``notes``).
    """

    task: str
    reference: str
    methods: List[str]
    metrics: List[str]
    per_asset: Dict[str, Dict[str, Dict[str, Optional[float]]]] = field(default_factory=dict)
    summary: Dict[str, Dict[str, Optional[Summary]]] = field(default_factory=dict)
    na: Dict[str, Dict[str, str]] = field(default_factory=dict)
    motion_groups: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    # per method: {"references": distinct reference objects, "per_sample": [ColourMatch as a dict, ...]}
    colour_matches: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def mark_na(self, method: str, metric: str, reason: str) -> None:
        self.na.setdefault(method, {}).setdefault(metric, reason)

    def to_json(self) -> Dict[str, Any]:
        return {
            "task": self.task,
            "reference": self.reference,
            "methods": self.methods,
            "metrics": self.metrics,
            "summary": {
                m: {k: (s.to_json() if s is not None else None) for k, s in per.items()} for m, per in self.summary.items()
            },
            "per_asset": {
                m: {uid: {k: json_number(v) for k, v in row.items()} for uid, row in rows.items()}
                for m, rows in self.per_asset.items()
            },
            "na": self.na,
            "motion_groups": self.motion_groups,
            "colour_matches": self.colour_matches,
            "notes": self.notes,
            "settings": self.settings,
        }
