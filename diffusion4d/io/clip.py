"""The rendered-clip format.

Layout::

    <root>/<uid>/<mode>/000.png ...     RGBA frames, 8 bit
    <root>/<uid>/<mode>/cameras.json    CameraTrajectory.to_json()
    <root>/<uid>/meta.json              uid, source, caption, motion magnitude, SSIM values, decision, reason

A clip folder is written to a temporary sibling and renamed into place in one step, so a
folder named ``<mode>`` is always complete: a killed writer leaves only a ``.tmp-*`` folder,
which readers ignore and the next writer removes. ``<mode>`` may also carry an orbit suffix
(``dynamic_1``, ``static_1``) when an asset has several orbits.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
from PIL import Image

from diffusion4d.cameras import CameraTrajectory

PathLike = Union[str, os.PathLike]
CAMERAS_FILE = "cameras.json"
META_FILE = "meta.json"


def frame_path(clip_folder: PathLike, index: int) -> Path:
    """Path of frame ``index`` inside a clip folder: ``{index:03d}.png``."""
    return Path(clip_folder) / f"{index:03d}.png"


def clip_dir(root: PathLike, uid: str, mode: str) -> Path:
    return Path(root) / uid / mode


def atomic_write_json(path: PathLike, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file + ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=_json_default)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


@dataclass
class Clip:
    """A rendered sequence in memory."""

    frames: np.ndarray  # [N, H, W, 4] uint8 RGBA (or [N, H, W, 3] RGB)
    cameras: CameraTrajectory

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] not in (3, 4):
            raise ValueError(f"frames must be [N, H, W, 3|4], got shape {self.frames.shape}")
        n, h, w = self.frames.shape[:3]
        if n != len(self.cameras):
            raise ValueError(f"{n} frames but {len(self.cameras)} cameras")
        if (w, h) != (self.cameras.width, self.cameras.height):
            raise ValueError(f"frames are {w}x{h} but cameras say {self.cameras.width}x{self.cameras.height}")

    def float_frames(self) -> np.ndarray:
        """[N, H, W, C] float32 in [0, 1]."""
        return self.frames.astype(np.float32) / 255.0


def write_clip(folder: PathLike, frames: np.ndarray, cameras: CameraTrajectory) -> Path:
    """Write ``frames`` [N, H, W, 3|4] uint8 and ``cameras`` to ``folder``, atomically.

    An existing complete folder is replaced. Returns the folder path.
    """
    clip = Clip(np.asarray(frames), cameras)
    if clip.frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {clip.frames.dtype}")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for i, frame in enumerate(clip.frames):
            Image.fromarray(frame).save(frame_path(tmp, i), compress_level=1)
        with open(tmp / CAMERAS_FILE, "w") as fh:
            json.dump(cameras.to_json(), fh, indent=1)
        if folder.exists():
            old = folder.parent / f".{folder.name}.tmp-old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_cameras(folder: PathLike) -> CameraTrajectory:
    path = Path(folder) / CAMERAS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {CAMERAS_FILE} in {folder}: not a clip folder")
    return CameraTrajectory.from_json(read_json(path))


def read_clip(folder: PathLike, rgba: bool = True) -> Clip:
    """Read a clip folder written by :func:`write_clip` (or by any stage following the contract)."""
    cameras = read_cameras(folder)
    frames = []
    for frame in cameras.frames:
        path = frame_path(folder, frame.index)
        if not path.is_file():
            raise FileNotFoundError(f"clip {folder} is missing frame {path.name}")
        with Image.open(path) as img:
            frames.append(np.asarray(img.convert("RGBA" if rgba else "RGB")))
    return Clip(np.stack(frames), cameras)


def write_meta(asset_folder: PathLike, meta: Dict[str, Any]) -> None:
    atomic_write_json(Path(asset_folder) / META_FILE, meta)


def read_meta(asset_folder: PathLike) -> Optional[Dict[str, Any]]:
    path = Path(asset_folder) / META_FILE
    return read_json(path) if path.is_file() else None


def list_clip_dirs(root: PathLike, mode: str) -> Dict[str, Path]:
    """``{uid: <root>/<uid>/<mode>}`` for every complete clip of ``mode`` under ``root``.

    ``root`` may also be a single clip folder (it holds ``cameras.json``): then the result has
    one entry keyed by the folder's parent name.
    """
    root = Path(root)
    if (root / CAMERAS_FILE).is_file():
        return {root.parent.name: root}
    out: Dict[str, Path] = {}
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and (child / mode / CAMERAS_FILE).is_file():
            out[child.name] = child / mode
    return out


def frames_to_float(frames: np.ndarray, background: Optional[float] = 1.0) -> np.ndarray:
    """uint8 [..., H, W, 4|3] -> float32 RGB [..., H, W, 3] in [0, 1], RGBA composited over a
    grey level ``background`` (1.0 = white, the convention of every stage; None keeps straight RGB)."""
    x = frames.astype(np.float32) / 255.0
    if x.shape[-1] == 4 and background is not None:
        alpha = x[..., 3:4]
        return x[..., :3] * alpha + background * (1.0 - alpha)
    return x[..., :3]


__all__: List[str] = [
    "Clip",
    "atomic_write_json",
    "clip_dir",
    "frame_path",
    "frames_to_float",
    "list_clip_dirs",
    "read_cameras",
    "read_clip",
    "read_json",
    "read_meta",
    "write_clip",
    "write_meta",
]
