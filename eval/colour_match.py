"""Does a generated orbit have its prompt's colour? A cheap, weight-free check for the demo.

For each generated sample (a text-to-4D sample of a training caption) the mean foreground
colour (pixels away from the white background) is compared with that of every reference asset's
ground-truth orbit; the sample "matches" when its own asset is the nearest in RGB. CLIP scores
need pretrained weights; this check does not, so the offline demo can state how many prompts'
colours were reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch

from diffusion4d.metrics import SILHOUETTE_THRESHOLD, foreground_colour


def foreground_mean_colour(frames: np.ndarray, threshold: float = SILHOUETTE_THRESHOLD) -> Optional[np.ndarray]:
    """Mean RGB ``[3]`` of the pixels of ``frames`` ``[F, H, W, 3]`` (float in [0, 1], over white)
    that differ from white by more than ``threshold`` in some channel (the project's one silhouette,
    :func:`diffusion4d.metrics.foreground_colour`, in float64); None if there are none."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [F, H, W, 3], got {frames.shape}")
    colour = foreground_colour(torch.from_numpy(frames).permute(0, 3, 1, 2), threshold)
    return None if colour is None else colour.numpy()


@dataclass
class ColourMatch:
    uid: str
    colour: Optional[List[float]]  # the sample's mean foreground RGB
    own_colour: Optional[List[float]]  # its asset's
    distance: Optional[float]  # RGB distance between the two
    rank: Optional[int]  # 1 = its own asset is the nearest reference
    nearest: Optional[str]  # uid of the nearest reference

    @property
    def matched(self) -> bool:
        return self.rank == 1


def rank_colours(colours: Dict[str, Optional[np.ndarray]], references: Dict[str, Optional[np.ndarray]],
                 objects: Optional[Dict[str, str]] = None) -> List[ColourMatch]:
    """Per sample (keyed by the uid of the asset its caption describes), the rank of its own asset
    among ``references`` (uid -> mean foreground RGB) by RGB distance; None colours give no verdict.

    ``objects`` (uid -> object key, e.g. the caption) makes references of one object count once:
    several renders of the same object (the demo's amplitude variants share a caption) then do
    not compete with each other, and a sample's own object is the nearest of its references.
    Without it every uid is its own object.
    """
    refs = {uid: c for uid, c in references.items() if c is not None}
    key = (lambda u: objects.get(u, u)) if objects else (lambda u: u)
    out = []
    for uid, c in colours.items():
        own = refs.get(uid)
        if c is None or own is None:
            out.append(ColourMatch(uid, None if c is None else c.tolist(), None if own is None else own.tolist(), None, None, None))
            continue
        nearest: Dict[str, tuple] = {}  # object -> (distance, uid) of its nearest reference
        for r, rc in refs.items():
            d = float(np.linalg.norm(c - rc))
            if key(r) not in nearest or d < nearest[key(r)][0]:
                nearest[key(r)] = (d, r)
        order = sorted(nearest, key=lambda k: nearest[k])
        out.append(ColourMatch(uid, c.tolist(), own.tolist(), float(np.linalg.norm(c - own)), order.index(key(uid)) + 1,
                               nearest[order[0]][1]))
    return out


def colour_match(generated: Dict[str, np.ndarray], references: Dict[str, np.ndarray],
                 objects: Optional[Dict[str, str]] = None) -> List[ColourMatch]:
    """:func:`rank_colours` of the mean foreground colours of ``generated`` and ``references``
    (uid -> frames ``[F, H, W, 3]``)."""
    return rank_colours({u: foreground_mean_colour(f) for u, f in generated.items()},
                        {u: foreground_mean_colour(f) for u, f in references.items()}, objects)


__all__ = ["ColourMatch", "colour_match", "foreground_mean_colour", "rank_colours"]
