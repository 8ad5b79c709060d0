"""Run curation over a task list: lock, resume, execute, record, summarise.

Resumability: uids already in ``manifest.jsonl`` are skipped whatever their status
(``retry_failed`` reruns failed ones); a record is appended only after the worker has
written the asset's clips (atomically) and ``meta.json``, so a killed run never leaves a
recorded asset incomplete, and a rerun never duplicates a row.

One writer per output (and shard): a run holds ``OUT/.curate.lock`` (``OUT/.curate.shard-<i>-of-<N>.lock``
for ``--shard i/N`` with N > 1, so the shards of one array job still share an output) for its
whole duration (:func:`curation_lock`, a ``filelock``); a second run on the same output waits
``wait`` seconds and then refuses with one line naming the lock file. Holding the lock, a run
first removes the temporaries a killed writer left in the asset folders it is about to write
(``.<mode>.tmp-*`` folders, ``.meta.json.*.tmp`` files) and then checks that the output's
recorded render settings (``curate_config.yaml``, written on the first run) match its own
(:data:`RENDER_KEYS`): a rerun with other frames, resolution, orbits, fov, ... is refused with
one line naming the differing settings, since one dataset would otherwise mix two renderings.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import yaml

from diffusion4d.config import config_to_dict
from diffusion4d.errors import UserError
from diffusion4d.io import ManifestRecord, ManifestWriter, read_manifest
from diffusion4d.io.names import UnsafeNameError, join_inside
from diffusion4d.logging_utils import progress

from .curate_asset import AssetTask, curate_asset
from .curate_config import CurateConfig, parse_shard
from .executors import run_tasks

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
CONFIG_FILE = "curate_config.yaml"
LOCK_FILE = ".curate.lock"
#: seconds a run waits for another run's lock on the same output before refusing (``--wait``)
DEFAULT_WAIT = 10.0
#: settings that decide what the clips look like: a rerun on an existing output must keep them
RENDER_KEYS = ("render.frames", "render.resolution", "render.modes", "render.orbits_per_asset", "render.fov",
               "render.radius", "render.elevation", "render.azimuth_aug", "render.elevation_aug",
               "render.elevation_range", "render.duration_seconds", "render.animation", "render.normalize", "seed")


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


def lock_path(output, shard: str = "0/1") -> Path:
    """The lock file of ``output`` for ``shard`` (see the module docstring)."""
    i, n = parse_shard(shard)
    return Path(output) / (LOCK_FILE if n == 1 else f".curate.shard-{i}-of-{n}.lock")


@contextlib.contextmanager
def curation_lock(output, shard: str = "0/1", wait: Optional[float] = None) -> Iterator[Path]:
    """Hold the output's (shard's) curation lock; UserError naming the lock file when another run
    holds it for more than ``wait`` seconds (None: :data:`DEFAULT_WAIT`; negative: wait forever)."""
    from filelock import FileLock, Timeout

    wait = DEFAULT_WAIT if wait is None else float(wait)
    path = lock_path(output, shard)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=wait if wait >= 0 else -1)
    except Timeout:
        raise UserError(f"another curate run is writing to {output}: lock {path} is held (waited {max(wait, 0):g} s); "
                        "wait for it to finish or pass --wait SECONDS") from None
    try:
        yield path
    finally:
        lock.release()


def _is_temporary(name: str) -> bool:
    """Names of the writers' temporaries: ``.<mode>.tmp-*`` (write_clip), ``.<file>.*.tmp`` and
    ``.<file>.tmp`` (atomic JSON/YAML writes)."""
    return name.startswith(".") and (".tmp-" in name or name.endswith(".tmp"))


def remove_stale_temporaries(output: Path, uids: List[str], top_level: bool = True) -> int:
    """Remove writers' temporaries (:func:`_is_temporary`) in ``output/<uid>/`` for ``uids`` and,
    with ``top_level``, in ``output`` itself. Only call it holding the lock that covers them.
    Returns how many were removed."""
    removed = 0
    folders = [output] if top_level else []
    folders += [output / u for u in uids]
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not _is_temporary(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        logger.info("removed %d stale temporaries left by an interrupted run in %s", removed, output)
    return removed


def _setting(tree: Dict[str, Any], key: str) -> Any:
    value: Any = tree
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def check_render_settings(cfg: CurateConfig, output: Path) -> None:
    """UserError naming the differing settings when ``output`` was curated with other :data:`RENDER_KEYS`."""
    path = output / CONFIG_FILE
    if not path.is_file():
        return
    try:
        recorded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"cannot read the recorded settings {path} ({type(err).__name__}); "
                        "restore or remove it to curate into this output") from None
    if not isinstance(recorded, dict):
        raise UserError(f"{path}: recorded settings are not a mapping; restore or remove it to curate into this output")
    current = config_to_dict(cfg)
    diffs = []
    for key in RENDER_KEYS:
        old, new = _setting(recorded, key), _setting(current, key)
        if old is not None and not _same(old, new):
            diffs.append(f"{key.split('.')[-1]} {old} (now {new})")
    if diffs:
        raise UserError(f"{output} was curated with other render settings: {', '.join(diffs)}; "
                        "use the same settings to resume, or a new --output")


def write_config(cfg: CurateConfig, path: Path) -> None:
    """The resolved config as YAML, atomically, through a uniquely named temporary (shard-safe)."""
    from diffusion4d.io.clip import follow_umask

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)
        follow_umask(tmp)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def prepare_output(cfg: CurateConfig, uids: List[str]) -> Path:
    """Holding the lock: create the output, remove stale temporaries of ``uids``, check and record
    the render settings. Returns the output folder."""
    from diffusion4d.io.names import is_safe_name

    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    _, n = parse_shard(cfg.shard)
    check_render_settings(cfg, out)
    # top-level temporaries may belong to a concurrent shard's writer: only a sole writer removes them
    remove_stale_temporaries(out, [u for u in uids if is_safe_name(u)], top_level=n == 1)
    write_config(cfg, out / CONFIG_FILE)
    return out


def run_curation(cfg: CurateConfig, tasks: List[AssetTask], wait: Optional[float] = None,
                 locked: bool = False) -> CurationSummary:
    """Curate ``tasks`` into ``cfg.output``; returns the summary (also logged).

    Takes the output's lock (:func:`curation_lock`, waiting up to ``wait`` seconds) unless the
    caller already holds it (``locked=True``).
    """
    if not locked:
        with curation_lock(cfg.output, cfg.shard, wait):
            return run_curation(cfg, tasks, locked=True)
    out = prepare_output(cfg, [t.uid for t in tasks])
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
