"""Finished stages saved in the output folder, so a rerun after a crash or a kill resumes.

The coarse stage's result (the static / canonical Gaussians) is written to
``<output>/coarse.safetensors`` once the stage finishes, before the fine stage starts: one file,
written under a temporary name in the same folder and moved into place with ``os.replace``, so
the folder never holds a half-written one. Its safetensors metadata records a *fingerprint*:
a hash of everything the coarse stage's result depends on, i.e. the resolved config without
its ``fine.*`` and ``output.*`` sections (which the coarse stage never reads) and the input
clips' file names and sizes plus the bytes of their ``cameras.json``. A saved stage is reused
only when its fingerprint equals the current one; otherwise the log says what differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from diffusion4d.logging_utils import get_logger
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.recon_config import ReconConfig

log = get_logger(__name__)

#: bumped when the layout of a saved stage changes (older files are then not reused)
STAGE_FORMAT = "1"
#: config sections the coarse stage does not read (changing them keeps a saved coarse stage valid)
NOT_COARSE_SECTIONS = ("fine", "output")
COARSE_FILE = "coarse.safetensors"


def _clip_files(folder: Path) -> List[Tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in Path(folder).iterdir() if p.is_file())


def coarse_inputs(cfg: ReconConfig, clips: Mapping[str, Optional[Path]]) -> Dict[str, object]:
    """What the coarse stage's result depends on (JSON-serialisable): the config and the input
    clips (``role -> clip folder``; ``None`` for a clip not used)."""
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_COARSE_SECTIONS}
    inputs: Dict[str, object] = {}
    for role, folder in clips.items():
        if folder is None:
            inputs[role] = None
            continue
        folder = Path(folder)
        cams = folder / "cameras.json"
        inputs[role] = {
            "files": _clip_files(folder),
            "cameras_sha256": hashlib.sha256(cams.read_bytes()).hexdigest() if cams.is_file() else None,
        }
    return {"config": config, "inputs": inputs}


def fingerprint(description: Dict[str, object]) -> str:
    """sha256 of a canonical JSON encoding of :func:`coarse_inputs`' result."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(d, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def describe_difference(old: Dict[str, object], new: Dict[str, object], limit: int = 4) -> str:
    """A short human-readable list of the keys whose values differ between two descriptions."""
    a, b = _flatten(json.loads(json.dumps(old, default=str))), _flatten(json.loads(json.dumps(new, default=str)))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if key.startswith("inputs."):
                diffs.append(f"the {key.split('.')[1]} clip's files differ")
            else:
                diffs.append(f"{key.removeprefix('config.')}: {a.get(key)!r} -> {b.get(key)!r}")
    diffs = list(dict.fromkeys(diffs))  # several keys of one clip: one line
    if not diffs:
        return "different fingerprint"
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


def save_coarse(path: Path, model: GaussianModel, description: Dict[str, object], seconds: float) -> None:
    """Write the coarse stage's Gaussians and fingerprint to ``path`` atomically (temp file + ``os.replace``)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"gaussians.{k}": v.detach().cpu().contiguous() for k, v in model.params.items()}
    meta = {
        "stage": "coarse",
        "format": STAGE_FORMAT,
        "fingerprint": fingerprint(description),
        "description": json.dumps(description, sort_keys=True, default=str),
        "sh_degree": str(model.sh_degree),
        "num_gaussians": str(len(model)),
        "seconds": f"{seconds:.3f}",
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_coarse(path: Path, description: Dict[str, object], device) -> Tuple[Optional[GaussianModel], dict, str]:
    """The saved coarse stage at ``path`` when it matches ``description``.

    Returns ``(model or None, metadata, reason)``; ``reason`` says why it is not reused (empty
    when it is). A missing, unreadable or mismatching file is never an error: the stage reruns."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        return None, {}, "no saved coarse stage"
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # a foreign or damaged file: refit rather than fail
        return None, {}, f"{path} is unreadable ({type(err).__name__}: {err})"
    if meta.get("stage") != "coarse" or meta.get("format") != STAGE_FORMAT:
        return None, meta, f"{path} is not a coarse stage of format {STAGE_FORMAT}"
    if meta.get("fingerprint") != fingerprint(description):
        try:
            old = json.loads(meta.get("description", "{}"))
        except ValueError:
            old = {}
        return None, meta, f"it was made with a different config or input ({describe_difference(old, description)})"
    params = {k.split(".", 1)[1]: v.to(device) for k, v in tensors.items() if k.startswith("gaussians.")}
    return GaussianModel(params, int(meta["sh_degree"])), meta, ""


__all__ = ["COARSE_FILE", "coarse_inputs", "fingerprint", "describe_difference", "save_coarse", "load_coarse"]
