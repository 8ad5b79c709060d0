"""Reading what the other stages leave next to their clips: prompts, requested motion, seeds, timings.

Per asset / sample folder ``<DIR>/<uid>/``:

* ``meta.json`` (curation): ``caption``.
* ``generation.json`` (``diffusion4d generate``): ``prompt``, ``motion_magnitude``, ``seed``,
  optional ``image`` (input image path) and ``timings``; the values may also sit under a
  ``parameters`` (or ``params``/``config``) sub-dictionary.
* ``metrics.json`` (``diffusion4d reconstruct``): ``timings``.

A file that exists but is not a JSON object (truncated, not JSON) is bad input: a ``UserError``
naming the file (:class:`diffusion4d.io.InvalidInputError`), like every reader of
:mod:`diffusion4d.io`; ``meta.json`` is read with :func:`diffusion4d.io.read_meta` (validated).
A missing file gives None.

Seconds are read as ``total_seconds`` / ``seconds`` / ``time_seconds`` / ``wall_seconds``, else from a
``timings`` dictionary: its ``total`` (or ``total_seconds``) entry, else the sum of its numeric
entries.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Optional

from diffusion4d.io import InvalidInputError, read_json, read_meta

GENERATION_FILE = "generation.json"
RECON_METRICS_FILE = "metrics.json"
_NESTED = ("parameters", "params", "config", "args")


def _read(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``; None when the file does not exist; InvalidInputError (a
    UserError naming the file) when it is not a JSON object."""
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    return data


def read_generation(asset_dir: Path) -> Optional[Dict[str, Any]]:
    return _read(Path(asset_dir) / GENERATION_FILE)


def read_recon_metrics(asset_dir: Path) -> Optional[Dict[str, Any]]:
    return _read(Path(asset_dir) / RECON_METRICS_FILE)


def lookup(record: Optional[Dict[str, Any]], key: str) -> Any:
    """``record[key]``, or the same key inside a ``parameters``-like sub-dictionary; None if absent."""
    if not record:
        return None
    if key in record:
        return record[key]
    for nest in _NESTED:
        sub = record.get(nest)
        if isinstance(sub, dict) and key in sub:
            return sub[key]
    return None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def seconds_of(record: Optional[Dict[str, Any]]) -> Optional[float]:
    """Wall time in seconds recorded in a generation.json / metrics.json dict (see module docstring)."""
    if not record:
        return None
    for key in ("total_seconds", "seconds", "time_seconds", "wall_seconds"):
        value = _number(record.get(key))
        if value is not None:
            return value
    timings = record.get("timings")
    if isinstance(timings, dict):
        for key in ("total", "total_seconds"):
            value = _number(timings.get(key))
            if value is not None:
                return value
        values = [v for v in (_number(x) for x in timings.values()) if v is not None]
        if values:
            return float(sum(values))
    return None


def caption_of(gt_asset_dir: Optional[Path], pred_asset_dir: Optional[Path]) -> Optional[str]:
    """The prompt a sample was generated from, else the curated caption of the ground truth."""
    prompt = lookup(read_generation(pred_asset_dir), "prompt") if pred_asset_dir else None
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    meta = read_meta(Path(gt_asset_dir)) if gt_asset_dir else None
    caption = meta.get("caption") if meta else None
    return caption if isinstance(caption, str) and caption.strip() else None


def input_image_of(pred_asset_dir: Path) -> Optional[Path]:
    """The conditioning image recorded in generation.json (``image``/``image_path``), if it exists."""
    gen = read_generation(pred_asset_dir)
    for key in ("image", "image_path", "input_image"):
        value = lookup(gen, key)
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute():
                path = Path(pred_asset_dir) / path
            if path.is_file():
                return path
    return None
