"""Run curation over a task list: resume, execute, record, summarise.

Resumability: uids already in ``manifest.jsonl`` are skipped whatever their status
(``retry_failed`` reruns failed ones); a record is appended only after the worker has
written the asset's clips (atomically) and ``meta.json``, so a killed run never leaves a
recorded asset incomplete, and a rerun never duplicates a row.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from diffusion4d.config import save_config
from diffusion4d.io import ManifestRecord, ManifestWriter, read_manifest
from diffusion4d.io.names import UnsafeNameError, join_inside
from diffusion4d.logging_utils import progress

from .curate_asset import AssetTask, curate_asset
from .curate_config import CurateConfig
from .executors import run_tasks

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
CONFIG_FILE = "curate_config.yaml"


@dataclass
class CurationSummary:
    total: int = 0  # tasks after sharding
    skipped: int = 0  # already in the manifest
    rendered: int = 0  # processed in this run
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    reasons: Dict[str, int] = field(default_factory=dict)  # rejection rule / failure kind -> count

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))
        return (f"curate: rendered {self.rendered} / accepted {self.accepted} / rejected-by-rule {self.rejected} / "
                f"failed {self.failed} (skipped {self.skipped} already done){' [' + why + ']' if why else ''}; "
                f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} frames/s")


def pending_tasks(tasks: List[AssetTask], manifest_path: Path, retry_failed: bool = False):
    """(to do, number skipped): drops uids recorded in the manifest and duplicate uids."""
    done = {r["uid"]: r.get("status") for r in read_manifest(manifest_path)}
    todo, seen, skipped = [], set(), 0
    for t in tasks:
        if t.uid in seen:
            continue
        seen.add(t.uid)
        status = done.get(t.uid)
        if status is not None and not (retry_failed and status == "failed"):
            skipped += 1
            continue
        todo.append(t)
    return todo, skipped


def unsafe_task_reason(task: AssetTask, output: Path) -> str:
    """"" when ``task.uid`` may become ``output/<uid>``; else the failure reason (``unsafe_uid: ...``).

    The safe-name gate (:mod:`diffusion4d.io.names`): a uid such as ``../../x``, ``/abs/path``,
    ``..`` or ``a/b`` (from any source) never reaches the worker, which would write there.
    """
    try:
        join_inside(output, task.uid, "uid")
    except UnsafeNameError as err:
        return f"unsafe_uid: {err}"
    return ""


def run_curation(cfg: CurateConfig, tasks: List[AssetTask]) -> CurationSummary:
    """Curate ``tasks`` into ``cfg.output``; returns the summary (also logged)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / CONFIG_FILE)
    manifest_path = out / MANIFEST
    todo, skipped = pending_tasks(tasks, manifest_path, cfg.retry_failed)
    summary = CurationSummary(total=len(tasks), skipped=skipped)
    writer = ManifestWriter(manifest_path)
    reasons: Counter = Counter()
    start = time.perf_counter()
    safe = []
    for task in todo:  # the safe-name gate: an unsafe uid is recorded failed, nothing is written for it
        why = unsafe_task_reason(task, out)
        if not why:
            safe.append(task)
            continue
        writer.append(ManifestRecord(task.uid, task.source, "failed", why, caption=task.caption,
                                     renderer=cfg.render.renderer, extra=dict(task.extra)))
        summary.rendered += 1
        summary.failed += 1
        reasons["failed:unsafe_uid"] += 1
        logger.warning("%s", why)
    todo = safe
    results = run_tasks(curate_asset, todo, cfg, executor=cfg.executor, workers=cfg.workers, timeout=cfg.timeout,
                        address=cfg.ray_address)
    for task, result in progress(results, desc="curate", total=len(todo), unit="asset"):
        frames = int(result.pop("frames_rendered", 0) or 0)
        result.setdefault("renderer", cfg.render.renderer)
        writer.append(ManifestRecord.from_json({**{k: v for k, v in result.items() if k != "extra"}, **result.get("extra", {})}))
        summary.rendered += 1
        summary.frames += frames
        status = result["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status != "accepted":
            reasons[f"{status}:{str(result['reason']).split(':', 1)[0]}"] += 1
        logger.info("%s %s: %s", task.uid, status, result["reason"])
    summary.seconds = time.perf_counter() - start
    summary.reasons = dict(reasons)
    return summary
