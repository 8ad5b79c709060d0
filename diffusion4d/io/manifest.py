"""``manifest.jsonl``: one JSON line per asset tried by curation.

Guarantees:

* **append-safe**: each record is one ``os.write`` of a complete line on a file opened with
  ``O_APPEND`` and fsynced, so concurrent writers never interleave within a line;
* **readable while being written**: readers only trust complete (newline-terminated) lines;
* **tolerant of a truncated last line** (a writer killed mid-write): the reader skips it, and
  the next writer first terminates it so the fragment stays on its own line.

When an asset appears more than once (a retried failure), the last record wins.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

logger = logging.getLogger(__name__)

Status = Literal["accepted", "rejected", "failed"]
STATUSES = ("accepted", "rejected", "failed")


@dataclass
class ManifestRecord:
    """One line of ``manifest.jsonl``."""

    uid: str  # asset id (Objaverse uid, file stem, or procedural id)
    source: str  # objaverse | local | procedural
    status: Status  # accepted | rejected | failed
    reason: str  # why: the rule that decided, or the error of a failure
    motion_magnitude: Optional[float] = None  # Eq. 1 (per-element mean), first dynamic orbit
    caption: str = ""
    renderer: str = ""  # fast | blender
    seconds: float = 0.0  # wall time spent on the asset
    extra: Dict[str, Any] = field(default_factory=dict)  # anything else (SSIM values, orbits, ...)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update({k: v for k, v in extra.items() if k not in d})
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ManifestRecord":
        known = {"uid", "source", "status", "reason", "motion_magnitude", "caption", "renderer", "seconds"}
        return cls(**{k: d[k] for k in known if k in d}, extra={k: v for k, v in d.items() if k not in known})


class ManifestWriter:
    """Appends records to a manifest file; safe across threads and processes."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._terminate_partial_line()

    def _terminate_partial_line(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
        if last != b"\n":
            logger.warning("%s ends with a truncated line (interrupted writer); it will be ignored", self.path)
            self._append_bytes(b"\n")

    def _append_bytes(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            if written != len(data):  # pragma: no cover - only on a full disk
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, record: Union[ManifestRecord, Dict[str, Any]]) -> None:
        data = record.to_json() if isinstance(record, ManifestRecord) else dict(record)
        for key in ("uid", "status"):
            if key not in data:
                raise ValueError(f"manifest record needs {key!r}: {data}")
        line = json.dumps(data, sort_keys=True, default=str) + "\n"
        with self._lock:
            self._append_bytes(line.encode())


def read_manifest(path: Union[str, os.PathLike], latest_only: bool = True) -> List[Dict[str, Any]]:
    """Records of a manifest as dicts, in file order.

    Incomplete or corrupt lines are skipped (with a warning unless it is a truncated last line).
    With ``latest_only`` an asset recorded several times keeps only its last record (in the
    position of that last record). A missing file gives an empty list.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline (partial line)
    records: List[Dict[str, Any]] = []
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or "uid" not in rec:
                raise ValueError("not a record")
        except ValueError:
            logger.warning("%s:%d: skipping unreadable line", path, number)
            continue
        records.append(rec)
    if tail.strip():
        logger.debug("%s: ignoring a truncated last line", path)
    if not latest_only:
        return records
    last_index = {rec["uid"]: i for i, rec in enumerate(records)}
    return [rec for i, rec in enumerate(records) if last_index[rec["uid"]] == i]
