"""The rendered-clip format.

Layout::

    <root>/<uid>/<mode>/000.png ...     RGBA frames, 8 bit
    <root>/<uid>/<mode>/cameras.json    CameraTrajectory.to_json()
    <root>/<uid>/meta.json              uid, source, caption, motion magnitude, SSIM values, decision, reason

A clip folder is written to a temporary sibling and renamed into place in one step, so a
folder named ``<mode>`` is always complete: a killed writer leaves only a ``.tmp-*`` folder,
which readers ignore and the next writer removes. ``<mode>`` may also carry an orbit suffix
(``dynamic_1``, ``static_1``) when an asset has several orbits.

The readers validate at the boundary (every command and the trainer read clips through them):
a file that breaks the contract raises :class:`~diffusion4d.io.errors.InvalidInputError` (a
``UserError`` and a ``ValueError``) or, when missing, :class:`~diffusion4d.io.errors.MissingInputError`
(a ``UserError`` and a ``FileNotFoundError``), with a message naming the file and the field:

* ``cameras.json``: JSON object with ``width``/``height`` (positive integers), ``mode``,
  ``frames`` (non-empty list; each with a unique integer ``index``, finite ``time``,
  ``time_seconds``, ``azimuth``, ``elevation``, ``radius``, ``c2w`` a finite 4x4 rigid transform
  (rotation orthonormal with determinant +1 within :data:`RIGID_TOLERANCE`, last row
  ``[0, 0, 0, 1]``) and ``K`` a finite 3x3 intrinsic matrix (positive focal lengths, last row
  ``[0, 0, 1]``));
* frames: every ``{index:03d}.png`` of the cameras present, a readable image, of the cameras'
  ``width`` x ``height``, and no other numbered PNG in the folder (frame count = camera count);
* ``meta.json``: a JSON object whose ``motion_magnitude`` (and each orbit's) is null or a finite
  number.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
from PIL import Image

from diffusion4d.cameras import CameraTrajectory
from diffusion4d.io.errors import InvalidInputError, MissingInputError

PathLike = Union[str, os.PathLike]
CAMERAS_FILE = "cameras.json"
META_FILE = "meta.json"


def frame_path(clip_folder: PathLike, index: int) -> Path:
    """Path of frame ``index`` inside a clip folder: ``{index:03d}.png``."""
    return Path(clip_folder) / f"{index:03d}.png"


def clip_dir(root: PathLike, uid: str, mode: str) -> Path:
    return Path(root) / uid / mode


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: PathLike, directory: bool = False) -> None:
    """Give a file (0666) or folder (0777) made by ``mkstemp``/``mkdtemp`` (0600/0700) the
    permissions the process umask gives a plainly created one."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


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
        follow_umask(tmp)
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
    """Parsed JSON of ``path``; :class:`MissingInputError` when it does not exist,
    :class:`InvalidInputError` (naming the file, line and column) when it is not JSON."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise MissingInputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path}: is a folder, expected a JSON file") from None
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}: not valid JSON (line {err.lineno} column {err.colno}: {err.msg})") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: not valid JSON (not UTF-8 text)") from None


#: tolerance of the rigid-transform check of a camera's c2w (orthonormal rotation, last row)
RIGID_TOLERANCE = 1e-3
_FRAME_NUMBERS = ("time", "time_seconds", "azimuth", "elevation", "radius")
_NUMBERED_PNG = re.compile(r"^\d+\.png$")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matrix(value: Any, shape: tuple, where: str) -> np.ndarray:
    """``value`` as a float matrix of ``shape`` (a flat list of the same size is accepted)."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{where}: not a {shape[0]}x{shape[1]} matrix of numbers") from None
    if m.shape != shape and m.shape != (shape[0] * shape[1],):
        got = "x".join(str(d) for d in m.shape) or "a scalar"
        raise InvalidInputError(f"{where}: not a {shape[0]}x{shape[1]} matrix (got {got})")
    m = m.reshape(shape)
    if not np.isfinite(m).all():
        raise InvalidInputError(f"{where}: holds NaN or Inf")
    return m


def check_c2w(c2w: np.ndarray, where: str, tol: float = RIGID_TOLERANCE) -> None:
    """InvalidInputError unless ``c2w`` is a rigid camera-to-world transform (see module docstring)."""
    if np.abs(c2w[3] - np.array([0.0, 0.0, 0.0, 1.0])).max() > tol:
        raise InvalidInputError(f"{where}: last row must be [0, 0, 0, 1], got {np.round(c2w[3], 6).tolist()}")
    R = c2w[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if err > tol or abs(det - 1.0) > tol:
        raise InvalidInputError(f"{where}: rotation part is not orthonormal with determinant +1 "
                                f"(|R^T R - I| = {err:.3g}, det = {det:.3g}): a singular or scaled camera")


def check_intrinsics(K: np.ndarray, where: str, tol: float = RIGID_TOLERANCE) -> None:
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InvalidInputError(f"{where}: focal lengths K[0][0], K[1][1] must be > 0, got {K[0, 0]:g}, {K[1, 1]:g}")
    if np.abs(K[2] - np.array([0.0, 0.0, 1.0])).max() > tol:
        raise InvalidInputError(f"{where}: last row must be [0, 0, 1], got {np.round(K[2], 6).tolist()}")


def validate_cameras_json(data: Any, path: PathLike) -> None:
    """InvalidInputError naming ``path`` and the field unless ``data`` follows the cameras.json contract."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    missing = [k for k in ("width", "height", "mode", "frames") if k not in data]
    if missing:
        raise InvalidInputError(f"{path}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key in ("width", "height"):
        v = data[key]
        if not _is_number(v) or not np.isfinite(v) or v != int(v) or v < 1:
            raise InvalidInputError(f"{path}: {key} must be a positive integer, got {v!r}")
    if not isinstance(data["mode"], str):
        raise InvalidInputError(f"{path}: mode must be a string, got {data['mode']!r}")
    if data.get("convention", "opencv") != "opencv":
        raise InvalidInputError(f"{path}: convention {data.get('convention')!r} is not 'opencv'")
    if "duration_seconds" in data and (not _is_number(data["duration_seconds"]) or not np.isfinite(data["duration_seconds"])):
        raise InvalidInputError(f"{path}: duration_seconds must be a finite number, got {data['duration_seconds']!r}")
    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise InvalidInputError(f"{path}: frames must be a non-empty list")
    seen = set()
    for i, f in enumerate(frames):
        where = f"{path}: frames[{i}]"
        if not isinstance(f, dict):
            raise InvalidInputError(f"{where} must be an object")
        missing = [k for k in ("index",) + _FRAME_NUMBERS + ("c2w", "K") if k not in f]
        if missing:
            raise InvalidInputError(f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        index = f["index"]
        if not _is_number(index) or not np.isfinite(index) or index != int(index) or index < 0:
            raise InvalidInputError(f"{where}.index must be an integer >= 0, got {index!r}")
        if int(index) in seen:
            raise InvalidInputError(f"{where}.index {int(index)} appears twice")
        seen.add(int(index))
        for key in _FRAME_NUMBERS:
            if not _is_number(f[key]) or not np.isfinite(f[key]):
                raise InvalidInputError(f"{where}.{key} must be a finite number, got {f[key]!r}")
        check_c2w(_matrix(f["c2w"], (4, 4), f"{where}.c2w"), f"{where}.c2w")
        check_intrinsics(_matrix(f["K"], (3, 3), f"{where}.K"), f"{where}.K")


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
        follow_umask(tmp, directory=True)
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
    """The validated ``cameras.json`` of a clip folder (see the module docstring for the checks)."""
    path = Path(folder) / CAMERAS_FILE
    if not path.is_file():
        raise MissingInputError(f"no {CAMERAS_FILE} in {folder}: not a clip folder")
    data = read_json(path)
    validate_cameras_json(data, path)
    return CameraTrajectory.from_json(data)


def _read_frame(path: Path, rgba: bool, width: int, height: int) -> np.ndarray:
    if not path.is_file():
        raise MissingInputError(f"{path}: frame missing (listed in {CAMERAS_FILE})")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path}: frame is an empty (0-byte) file")
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img.convert("RGBA" if rgba else "RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise InvalidInputError(f"{path}: not a readable image ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if array.shape[:2] != (height, width):
        raise InvalidInputError(f"{path}: frame is {array.shape[1]}x{array.shape[0]} but {CAMERAS_FILE} says "
                                f"width x height = {width}x{height}")
    return array


def read_clip(folder: PathLike, rgba: bool = True) -> Clip:
    """Read a clip folder written by :func:`write_clip` (or by any stage following the contract).

    Validates ``cameras.json`` and every frame (module docstring); the frame count must equal the
    camera count (an extra numbered PNG is an error naming both counts).
    """
    folder = Path(folder)
    cameras = read_cameras(folder)
    frames = [_read_frame(frame_path(folder, frame.index), rgba, cameras.width, cameras.height) for frame in cameras.frames]
    numbered = [p.name for p in folder.iterdir() if _NUMBERED_PNG.match(p.name)]
    if len(numbered) != len(cameras.frames):
        expected = {frame_path(folder, f.index).name for f in cameras.frames}
        extra = sorted(set(numbered) - expected)
        raise InvalidInputError(f"{folder}: {len(numbered)} frame PNGs but {CAMERAS_FILE} lists {len(cameras.frames)} frames"
                                + (f" (unexpected: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''})" if extra else ""))
    return Clip(np.stack(frames), cameras)


def write_meta(asset_folder: PathLike, meta: Dict[str, Any]) -> None:
    atomic_write_json(Path(asset_folder) / META_FILE, meta)


def _check_motion(value: Any, where: str) -> None:
    if value is None:
        return
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must be null or a finite number, got {value!r}")


def validate_meta(meta: Any, path: PathLike) -> None:
    """InvalidInputError naming ``path`` and the field unless ``meta`` is an object whose motion
    magnitudes (top level and per orbit) are null or finite numbers."""
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{path}: must hold a JSON object, got {type(meta).__name__}")
    _check_motion(meta.get("motion_magnitude"), f"{path}: motion_magnitude")
    orbits = meta.get("orbits")
    if orbits is not None:
        if not isinstance(orbits, list):
            raise InvalidInputError(f"{path}: orbits must be a list, got {type(orbits).__name__}")
        for i, orbit in enumerate(orbits):
            if not isinstance(orbit, dict):
                raise InvalidInputError(f"{path}: orbits[{i}] must be an object")
            _check_motion(orbit.get("motion_magnitude"), f"{path}: orbits[{i}].motion_magnitude")


def read_meta(asset_folder: PathLike) -> Optional[Dict[str, Any]]:
    """The validated ``meta.json`` of an asset folder, or None when there is none."""
    path = Path(asset_folder) / META_FILE
    if not path.is_file():
        return None
    meta = read_json(path)
    validate_meta(meta, path)
    return meta


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
    "InvalidInputError",
    "MissingInputError",
    "atomic_write_json",
    "check_c2w",
    "validate_cameras_json",
    "validate_meta",
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
