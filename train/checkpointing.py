"""Atomic, rotating training checkpoints.

``<output_dir>/checkpoint-<step>/`` holds the diffusers pipeline folder (contract 3:
``model_index.json``, ``unet/``, ...) and ``accelerate_state/`` (``Accelerator.save_state``:
model, optimizer, scheduler, EMA, RNG). It is written as ``.tmp-checkpoint-<step>`` by every
rank and renamed by the main process once all ranks are done, so a killed save never shows up
as a ``checkpoint-*`` folder and ``--resume latest`` always finds a complete one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from diffusion4d.errors import UserError

ACCELERATE_STATE = "accelerate_state"
_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: Path) -> List[Tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    out = []
    if Path(output_dir).is_dir():
        for p in Path(output_dir).iterdir():
            m = _PATTERN.match(p.name)
            if m and p.is_dir() and (p / ACCELERATE_STATE).is_dir():
                out.append((int(m.group(1)), p))
    return sorted(out)


def resolve_resume(output_dir: Path, resume: Optional[str]) -> Optional[Path]:
    """``None``/``""`` -> None; ``"latest"`` -> newest complete checkpoint (None when there is none); a path -> it."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(resume)
    if not (path / ACCELERATE_STATE).is_dir():
        raise UserError(f"--resume {resume}: not a checkpoint folder (no {ACCELERATE_STATE}/ inside)")
    return path


def step_of(checkpoint: Path) -> int:
    m = _PATTERN.match(Path(checkpoint).name)
    if not m:
        raise UserError(f"checkpoint folder name must be checkpoint-<step>: {checkpoint}")
    return int(m.group(1))


def remove_stale_temporaries(output_dir: Path) -> None:
    for p in Path(output_dir).glob(".tmp-checkpoint-*"):
        shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(accelerator, output_dir: Path, step: int, write_pipeline: Callable[[Path], None], keep_last: int) -> Path:
    """Save on every rank (collective), publish atomically on the main process, rotate.

    ``write_pipeline(folder)`` runs on the main process and writes the pipeline files into ``folder``.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    tmp = output_dir / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp / ACCELERATE_STATE))
    if accelerator.is_main_process:
        write_pipeline(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for _, old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
