"""Reading what the other stages leave next to their clips: prompts, requested motion, seeds, timings.

Per asset / sample folder ``<DIR>/<uid>/``:

* ``meta.json`` (curation): ``caption`` (:func:`diffusion4d.io.read_meta`, validated).
* ``generation.json`` (``diffusion4d generate``): a :class:`diffusion4d.io.records.GenerationRecord`
  (prompt, motion magnitude, seed, input image, timings; docs/contracts.md "Records").
* ``metrics.json`` (``diffusion4d reconstruct``): a :class:`diffusion4d.io.records.ReconMetrics` (timings).

A file that exists but is damaged (not JSON, not an object, a field of the wrong type) is bad
input: a ``UserError`` naming the file and the field (:class:`diffusion4d.io.InvalidInputError`).
A missing file gives None. Nothing is guessed: a sample without these files simply has no
prompt, motion or time recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from diffusion4d.io import read_meta
from diffusion4d.io.records import GENERATION_FILE, RECON_METRICS_FILE, GenerationRecord, ReconMetrics


def read_generation(asset_dir: Path) -> Optional[GenerationRecord]:
    """The sample's ``generation.json`` as a :class:`GenerationRecord` (None when absent)."""
    return GenerationRecord.read(Path(asset_dir) / GENERATION_FILE)


def read_recon_metrics(asset_dir: Path) -> Optional[ReconMetrics]:
    """The reconstruction's ``metrics.json`` as a :class:`ReconMetrics` (None when absent;
    InvalidInputError when damaged)."""
    return ReconMetrics.read(Path(asset_dir) / RECON_METRICS_FILE)


def recon_seconds(metrics: Optional[ReconMetrics]) -> Optional[float]:
    """Wall time of a reconstruction (:meth:`ReconMetrics.seconds`), None when not recorded."""
    return metrics.seconds() if metrics is not None else None


def generation_seconds(record: Optional[GenerationRecord]) -> Optional[float]:
    """Wall time of a generated sample (:meth:`GenerationRecord.seconds`), None when not recorded."""
    return record.seconds() if record is not None else None


def caption_of(gt_asset_dir: Optional[Path], pred_asset_dir: Optional[Path]) -> Optional[str]:
    """The prompt a sample was generated from, else the curated caption of the ground truth."""
    gen = read_generation(pred_asset_dir) if pred_asset_dir else None
    prompt = gen.prompt if gen is not None else None
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    meta = read_meta(Path(gt_asset_dir)) if gt_asset_dir else None
    caption = meta.get("caption") if meta else None
    return caption if isinstance(caption, str) and caption.strip() else None


def curation_status(gt_asset_dir: Path) -> Optional[str]:
    """The curated ``status`` of a ground-truth asset (accepted, rejected, failed), None without meta.json."""
    meta = read_meta(Path(gt_asset_dir))
    status = meta.get("status") if meta else None
    return status if isinstance(status, str) else None


def object_of(gt_asset_dir: Path) -> Optional[str]:
    """The object a ground-truth asset shows, for grouping renders of one object: the curated
    ``object`` (recorded from the asset file's ``asset.extras``, e.g. shared by a procedural asset's
    amplitude variants and motion swaps, whose captions differ), else its curated caption."""
    meta = read_meta(Path(gt_asset_dir))
    obj = meta.get("object") if meta else None
    return obj if isinstance(obj, str) and obj.strip() else caption_of(gt_asset_dir, None)


def input_image_of(pred_asset_dir: Path) -> Optional[Path]:
    """The conditioning image recorded in generation.json (``image``; relative to the sample
    folder when not absolute), if that file exists; else the prepared ``input.png`` it wrote."""
    gen = read_generation(pred_asset_dir)
    if gen is None:
        return None
    candidates = [gen.image] if gen.image else []
    if isinstance(gen.outputs.get("input_image"), str):
        candidates.append(gen.outputs["input_image"])
    for value in candidates:
        path = Path(value)
        if not path.is_absolute():
            path = Path(pred_asset_dir) / path
        if path.is_file():
            return path
    return None
