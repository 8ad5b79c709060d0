"""Write a set of procedural animated assets with their captions to a folder."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from diffusion4d.logging_utils import progress

from .assets import build_asset_glb, caption_for, sample_asset_spec

logger = logging.getLogger(__name__)

CAPTIONS_FILE = "captions.csv"
METADATA_FILE = "assets.jsonl"


@dataclass
class ProceduralAsset:
    """One generated asset.

    Attributes:
        uid: ``proc-s{seed}-{index:04d}``.
        path: the written ``<output_dir>/<uid>.glb``.
        caption: the text caption (also in ``captions.csv``).
        family: motion family, one of ``MOTION_FAMILIES``.
        params: the rest of the asset's description (the line written to ``assets.jsonl``).
    """

    uid: str
    path: Path
    caption: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)


def generate_assets(output_dir: str | Path, count: int, seed: int = 0,
                    show_progress: bool | None = None,
                    amplitudes: Sequence[float] = (1.0,),
                    motion_shifts: Sequence[int] = ()) -> list[ProceduralAsset]:
    """Generate ``count`` animated glTF assets, ``captions.csv`` and ``assets.jsonl``.

    Asset ``i`` belongs to family ``MOTION_FAMILIES[i % 7]``, so ``count >= 7`` covers them all.
    Output is byte-identical for the same ``seed``; files of other uids in the folder are
    left alone, and the two metadata files are rewritten to list exactly this set.

    Args:
        output_dir: folder to write into (created if missing).
        count: number of assets (>= 1).
        seed: non-negative integer seed.
        show_progress: force the tqdm progress bar on or off; by default it follows
            :func:`diffusion4d.logging_utils.progress` (main process, no ``DIFFUSION4D_NO_PROGRESS``).
        amplitudes: motion-amplitude scales in (0, 1]; every asset is written once per scale
            (scale 1 under its own uid, others as ``<uid>-a<scale>`` with the same caption), so
            each object appears with several motion magnitudes.
        motion_shifts: for every shift ``s``, asset ``i`` is also written with the motion of asset
            ``(i + s) % count`` (full amplitude, ``<uid>-m<index>``, see
            :func:`~.assets.sample_asset_spec`), so each motion appears on several objects.

    Returns:
        The assets, in index order.

    Example:
        >>> assets = generate_assets("/tmp/proc", count=7, seed=0)  # doctest: +SKIP
        >>> assets[0].caption  # doctest: +SKIP
        'a red cube spinning'
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    scales = [1.0] + [float(a) for a in amplitudes if float(a) != 1.0]
    if 1.0 not in [float(a) for a in amplitudes] or len(set(scales)) != len(scales) or any(not 0 < a <= 1 for a in scales):
        raise ValueError(f"amplitudes must be distinct values in (0, 1] including 1, got {list(amplitudes)}")
    shifts = [int(s) for s in motion_shifts]
    if len({s % count for s in shifts}) != len(shifts) or any(s % count == 0 for s in shifts):  # -1 and count - 1: one partner
        raise ValueError(f"motion_shifts must be distinct modulo count={count} and not multiples of it, got {list(motion_shifts)}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    assets = []
    disable = None if show_progress is None else not show_progress
    jobs = [(index, scale, None) for index in range(count) for scale in scales]
    jobs += [(index, 1.0, (index + s) % count) for index in range(count) for s in shifts]
    for index, scale, motion_from in progress(jobs, desc="procedural assets", unit="asset", disable=disable):
        spec = sample_asset_spec(seed, index, scale, motion_from)
        path = out / f"{spec.uid}.glb"
        path.write_bytes(build_asset_glb(spec))
        caption = caption_for(spec)
        record = {"uid": spec.uid, "file": path.name, "caption": caption, "family": spec.family,
                  "variant": spec.variant, "shape": spec.shape, "colour": spec.colour,
                  "colour2": spec.colour2 if spec.family == "multipart" else None,
                  "textured": spec.pattern is not None, "pattern": spec.pattern,
                  "interpolation": spec.interpolation, "motion_amplitude": spec.motion_amplitude,
                  "duration_s": spec.duration_s, "seed": seed, "index": index, "amplitude_scale": scale,
                  "motion_from": motion_from, "params": spec.params}
        assets.append(ProceduralAsset(spec.uid, path, caption, spec.family, record))
    with open(out / CAPTIONS_FILE, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        for asset in assets:
            writer.writerow([asset.uid, asset.caption])
    with open(out / METADATA_FILE, "w", encoding="utf-8") as f:
        for asset in assets:
            f.write(json.dumps(asset.params, sort_keys=True) + "\n")
    logger.info("wrote %d procedural assets to %s", len(assets), out)
    return assets
