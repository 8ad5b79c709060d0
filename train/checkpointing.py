"""Atomic, rotating training checkpoints.

``<output_dir>/checkpoint-<step>/`` holds the diffusers pipeline folder (contract 3:
``model_index.json``, ``unet/``, ...), ``accelerate_state/`` (``Accelerator.save_state``:
model, optimizer, scheduler, EMA, RNG) and, written last, the marker file ``COMPLETE``.

* It is written as ``.tmp-checkpoint-<step>`` by every rank; once all ranks are done the main
  process writes ``COMPLETE`` into it and renames it into place, so a killed save never shows
  up as a ``checkpoint-*`` folder.
* Replacing an existing ``checkpoint-<step>`` (a rerun reaching the same step) never leaves a
  moment without a complete one on disk: the old folder is renamed aside
  (``.old-checkpoint-<step>``), the new one renamed in, and only then the old one deleted. A
  process killed between the two renames is repaired by :func:`remove_stale_temporaries` on the
  next start (the complete new folder, else the old one, is put back in place).
* Rotation (``keep_last``) renames a checkpoint to ``.trash-checkpoint-<step>`` before deleting
  it, so a half-deleted checkpoint is never taken for a complete one.
* Only folders holding ``COMPLETE`` and ``accelerate_state/`` count (:func:`is_complete`):
  :func:`list_checkpoints` and ``--resume latest`` skip the others, and ``--resume latest`` with
  no complete checkpoint logs a warning (the run starts from step 0).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from diffusion4d.errors import UserError

logger = logging.getLogger(__name__)

ACCELERATE_STATE = "accelerate_state"
#: marker file written last into a checkpoint folder: without it the checkpoint is incomplete
COMPLETE_MARKER = "COMPLETE"
_PATTERN = re.compile(r"^checkpoint-(\d+)$")
_TMP, _OLD, _TRASH = ".tmp-checkpoint-", ".old-checkpoint-", ".trash-checkpoint-"


def is_complete(folder: Path) -> bool:
    """A checkpoint folder whose save finished: ``COMPLETE`` marker and ``accelerate_state/``."""
    folder = Path(folder)
    return (folder / COMPLETE_MARKER).is_file() and (folder / ACCELERATE_STATE).is_dir()


def _checkpoint_dirs(output_dir: Path) -> List[Tuple[int, Path]]:
    out = []
    if Path(output_dir).is_dir():
        for p in Path(output_dir).iterdir():
            m = _PATTERN.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def list_checkpoints(output_dir: Path) -> List[Tuple[int, Path]]:
    """Complete checkpoints (:func:`is_complete`), oldest first."""
    return [(step, p) for step, p in _checkpoint_dirs(output_dir) if is_complete(p)]


def resolve_resume(output_dir: Path, resume: Optional[str]) -> Optional[Path]:
    """``None``/``""`` -> None; ``"latest"`` -> newest complete checkpoint (None, with a warning,
    when there is none); a path -> it, when it is a complete checkpoint (UserError otherwise)."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if found:
            return found[-1][1]
        incomplete = [p.name for _, p in _checkpoint_dirs(output_dir)]
        logger.warning("--resume latest: no complete checkpoint in %s%s; starting from step 0", output_dir,
                       f" (skipped incomplete {', '.join(incomplete)}: no {COMPLETE_MARKER} marker)" if incomplete else "")
        return None
    path = Path(resume)
    if not (path / ACCELERATE_STATE).is_dir():
        raise UserError(f"--resume {resume}: not a checkpoint folder (no {ACCELERATE_STATE}/ inside)")
    if not (path / COMPLETE_MARKER).is_file():
        raise UserError(f"--resume {resume}: incomplete checkpoint (no {COMPLETE_MARKER} marker: its save was interrupted); "
                        f"if it is complete (saved before markers existed), create the marker: touch {path / COMPLETE_MARKER}")
    return path


def saved_unet_config(checkpoint: Path) -> dict:
    """The UNet config a checkpoint's pipeline folder holds (``unet/config.json``; ``{}`` when the
    checkpoint has none, e.g. one written before pipeline folders were saved with it)."""
    from diffusion4d.io import read_json

    path = Path(checkpoint) / "unet" / "config.json"
    return read_json(path) if path.is_file() else {}


def step_of(checkpoint: Path) -> int:
    m = _PATTERN.match(Path(checkpoint).name)
    if not m:
        raise UserError(f"checkpoint folder name must be checkpoint-<step>: {checkpoint}")
    return int(m.group(1))


def _step_suffix(name: str, prefix: str) -> Optional[int]:
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def remove_stale_temporaries(output_dir: Path) -> None:
    """Repair an interrupted replacement, then delete what killed saves left behind.

    Call it on the main process before training starts (no save in flight). For a step whose
    ``checkpoint-<step>`` is missing while ``.old-checkpoint-<step>`` exists (killed between
    the two renames), the complete ``.tmp-checkpoint-<step>`` is renamed in, else the old one is
    put back. Then every ``.tmp-``/``.old-``/``.trash-checkpoint-*`` folder is removed.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return
    for p in sorted(output_dir.iterdir()):
        step = _step_suffix(p.name, _OLD)
        if step is None:
            continue
        final = output_dir / f"checkpoint-{step}"
        if final.exists():
            continue
        tmp = output_dir / f"{_TMP}{step}"
        source = tmp if is_complete(tmp) else p if is_complete(p) else None
        if source is not None:
            os.replace(source, final)
            logger.warning("repaired %s after an interrupted checkpoint replacement", final)
    for prefix in (_TMP, _OLD, _TRASH):
        for p in output_dir.glob(f"{prefix}*"):
            shutil.rmtree(p, ignore_errors=True)


def _write_marker(folder: Path, step: int) -> None:
    """Write ``COMPLETE`` (flushed to disk), the last file of a checkpoint."""
    with open(folder / COMPLETE_MARKER, "w") as fh:
        json.dump({"step": step, "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}, fh)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _publish(tmp: Path, final: Path, step: int) -> None:
    """Rename the complete ``tmp`` to ``final``; an existing ``final`` is replaced without ever
    leaving no complete checkpoint on disk (old aside, new in, old deleted)."""
    if final.exists():
        aside = final.parent / f"{_OLD}{step}"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _discard(checkpoint: Path) -> None:
    """Delete a checkpoint so that it stops counting first: rename to ``.trash-``, then delete."""
    trash = checkpoint.parent / f"{_TRASH}{step_of(checkpoint)}"
    shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(checkpoint, trash)
    except OSError:
        trash = checkpoint
    try:
        (trash / COMPLETE_MARKER).unlink()
    except FileNotFoundError:
        pass
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(accelerator, output_dir: Path, step: int, write_pipeline: Callable[[Path], None], keep_last: int) -> Path:
    """Save on every rank (collective), publish atomically on the main process, rotate.

    ``write_pipeline(folder)`` runs on the main process and writes the pipeline files into ``folder``.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f"{_TMP}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / ACCELERATE_STATE))
    if accelerator.is_main_process:
        write_pipeline(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _write_marker(tmp, step)  # every rank has finished writing: the marker goes last
        _publish(tmp, final, step)
        for _, old in list_checkpoints(output_dir)[:-keep_last]:
            _discard(old)
    accelerator.wait_for_everyone()
    return final
