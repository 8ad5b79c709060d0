"""Motion-magnitude control: does a larger requested m give a sample that moves more?

Samples generated from the same prompt and seed at several requested magnitudes (read from
``generation.json``: ``motion_magnitude``, ``seed``, ``prompt``) form a group. In each group with
an ``m = 0`` sample, the measured deviation of every sample is Eq. 1 (mean form) against the
``m = 0`` sample: ``pixel_motion_magnitude(frames_m, frames_0)`` on RGB over white (so the
``m = 0`` sample itself measures 0). The Spearman rank correlation between requested and measured
values is computed per group (at least 3 distinct requested values, measured not constant);
a method's score is the mean over its groups. Identity across the sweep is recorded per sample:
the silhouette IoU and the mean-foreground-colour distance of its frame 0 (time 0, front view)
against the ``m = 0`` sample's frame 0 (motion should move the object, not change it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from diffusion4d.eval.colour_match import foreground_mean_colour
from diffusion4d.io import frames_to_float, read_clip
from diffusion4d.metrics import silhouette_iou
from diffusion4d.motion import pixel_motion_magnitude
from diffusion4d.eval.samples import read_generation


@dataclass
class MotionGroup:
    prompt: str
    seed: Optional[int]
    samples: List[str] = field(default_factory=list)  # sample names, sorted by requested m
    requested: List[float] = field(default_factory=list)
    measured: List[Optional[float]] = field(default_factory=list)
    spearman: Optional[float] = None
    reason: str = ""  # why spearman is None
    # identity across the sweep: frame 0 (time 0, the front view) of each sample against the m = 0 sample's
    identity_iou: List[Optional[float]] = field(default_factory=list)  # silhouette IoU
    identity_colour: List[Optional[float]] = field(default_factory=list)  # RGB distance of mean foreground colours
    # identity over time, which frame 0 cannot see: per sample, the largest RGB distance between the mean
    # foreground colour of one of its frames and of its own frame 0 (an object that turns into another one
    # over the orbit; no target, a diagnostic)
    colour_drift: List[Optional[float]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "seed": self.seed,
            "samples": self.samples,
            "requested": self.requested,
            "measured": self.measured,
            "spearman": self.spearman,
            "reason": self.reason,
            "identity_iou": self.identity_iou,
            "identity_colour": self.identity_colour,
            "colour_drift": self.colour_drift,
        }


def spearman(requested: List[float], measured: List[float]) -> Tuple[Optional[float], str]:
    """Spearman's rho (scipy.stats) or (None, reason)."""
    from scipy.stats import spearmanr

    if len(set(requested)) < 3:
        return None, f"needs >= 3 distinct requested magnitudes, got {len(set(requested))}"
    if len(set(measured)) < 2:
        return None, "measured deviation is constant"
    rho = float(spearmanr(requested, measured).statistic)
    if not math.isfinite(rho):
        return None, "undefined rank correlation"
    # rho of a few ranks is a ratio of small integers; scipy's float result can miss it in the last bit
    # (0.8999999999999998 for one swapped pair of 5), which would fail a ">= 0.9" bar it meets
    return round(rho, 12), ""


def find_groups(sample_dirs: Dict[str, Path]) -> List[MotionGroup]:
    """Group ``{name: <DIR>/<name>/<mode>}`` clips by (prompt, seed) using their generation.json."""
    groups: Dict[Tuple[str, Optional[int]], List[Tuple[float, str]]] = {}
    for name, clip in sample_dirs.items():
        gen = read_generation(clip.parent)
        if gen is None or gen.motion_magnitude is None:
            continue
        m = gen.motion_magnitude
        key = (str(gen.prompt or ""), int(gen.seed))
        groups.setdefault(key, []).append((float(m), name))
    out = []
    for (prompt, seed), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] if kv[0][1] is not None else -1)):
        members.sort()
        out.append(MotionGroup(prompt, seed, [n for _, n in members], [m for m, _ in members]))
    return out


def evaluate_groups(groups: List[MotionGroup], sample_dirs: Dict[str, Path]) -> List[MotionGroup]:
    """Fill ``measured`` and ``spearman`` of each group (reads the clips)."""
    for group in groups:
        if 0.0 not in group.requested:
            group.measured = [None] * len(group.samples)
            group.reason = "no m = 0 sample in the group"
            continue
        ref_name = group.samples[group.requested.index(0.0)]
        ref = frames_to_float(read_clip(sample_dirs[ref_name]).frames)
        measured: List[Optional[float]] = []
        group.identity_iou, group.identity_colour, group.colour_drift = [], [], []
        ref_colour = foreground_mean_colour(ref[:1])
        for name in group.samples:
            frames = frames_to_float(read_clip(sample_dirs[name]).frames)
            group.colour_drift.append(colour_drift(frames))
            if frames.shape != ref.shape:
                measured.append(None)
                group.identity_iou.append(None)
                group.identity_colour.append(None)
                continue
            a = torch.from_numpy(frames).permute(0, 3, 1, 2)
            b = torch.from_numpy(ref).permute(0, 3, 1, 2)
            measured.append(float(pixel_motion_magnitude(a, b)))
            group.identity_iou.append(float(silhouette_iou(a[:1], b[:1])[0]))
            colour = foreground_mean_colour(frames[:1])
            group.identity_colour.append(None if colour is None or ref_colour is None else float(np.linalg.norm(colour - ref_colour)))
        group.measured = measured
        pairs = [(r, m) for r, m in zip(group.requested, measured) if m is not None]
        if len(pairs) < len(measured):
            group.reason = "some samples differ in shape from the m = 0 sample"
        group.spearman, reason = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        group.reason = reason or group.reason
    return groups


def colour_drift(frames: np.ndarray) -> Optional[float]:
    """Largest RGB distance between the mean foreground colour of a frame of ``frames`` ``[F, H, W, 3]``
    (floats in [0, 1]) and that of frame 0; None when frame 0 or every other frame has no foreground."""
    first = foreground_mean_colour(frames[:1])
    others = [foreground_mean_colour(frames[k : k + 1]) for k in range(1, len(frames))]
    distances = [float(np.linalg.norm(c - first)) for c in others if c is not None]
    return max(distances) if first is not None and distances else None


def method_score(groups: List[MotionGroup]) -> Tuple[Optional[float], Optional[float], int, str]:
    """(mean rho, std rho, number of groups scored, reason when none)."""
    rhos = [g.spearman for g in groups if g.spearman is not None]
    if not rhos:
        reasons = sorted({g.reason for g in groups if g.reason}) or ["no samples with generation.json motion_magnitude"]
        return None, None, 0, "; ".join(reasons)
    return float(np.mean(rhos)), float(np.std(rhos)), len(rhos), ""
