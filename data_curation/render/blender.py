"""Blender backend: runs :mod:`.blender_script` in a Blender subprocess.

Launchers, in order: ``--blender PATH`` (an executable, or a folder holding ``blender``);
``blender`` on PATH; ``blenderproc`` on PATH (``blenderproc run``, which needs its own
Blender: it cannot download one offline). Same cameras as the fast renderer
(``opencv_to_blender``), same time mapping and unit-box normalisation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

import numpy as np

from diffusion4d.blender import blender_executable
from diffusion4d.cameras import CameraTrajectory, opencv_to_blender
from diffusion4d.errors import UserError

SCRIPT = Path(__file__).with_name("blender_script.py")


class BlenderNotFound(UserError):
    """No usable Blender: the CLI prints one line and exits 2."""


def find_blender(path: Optional[str] = None) -> List[str]:
    """The command prefix that runs a Blender Python script, e.g. ``["/usr/bin/blender", "-b", "--python"]``."""
    try:
        exe = blender_executable(path)
    except FileNotFoundError:
        raise BlenderNotFound(f"--blender {path}: no Blender executable there") from None
    if exe:
        return [exe, "-b", "--factory-startup", "--python"]
    bproc = shutil.which("blenderproc")
    if bproc:
        return [bproc, "run"]
    raise BlenderNotFound("no Blender found: install it (Debian: apt-get install blender python3-numpy), "
                          "pass --blender PATH, or use --renderer fast")


def _run_job(asset_path, cameras: Optional[CameraTrajectory], blender: Optional[str], engine: str, samples: int,
             normalize: str, max_extent: float, timeout: float, workdir: Path) -> dict:
    frames = []
    if cameras is not None:
        for f in cameras.frames:
            frames.append({"time": float(f.time), "c2w_blender": opencv_to_blender(f.c2w).tolist(), "K": np.asarray(f.K).tolist()})
    job = {"asset": str(Path(asset_path).resolve()), "output": str(workdir), "engine": engine, "samples": samples,
           "normalize": normalize, "max_extent": max_extent, "frames": frames, "info": str(workdir / "info.json"),
           "width": cameras.width if cameras else 8, "height": cameras.height if cameras else 8}
    (workdir / "job.json").write_text(json.dumps(job))
    cmd = find_blender(blender) + [str(SCRIPT), "--", "--job", str(workdir / "job.json")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timeout: Blender did not finish in {timeout:g} s") from None
    info_path = workdir / "info.json"
    if not info_path.is_file():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"blender_error: Blender exited with {proc.returncode} without a result ({tail[0][:160]})")
    info = json.loads(info_path.read_text())
    if not info.get("ok"):
        from ..gltf import AssetError

        kind, _, detail = str(info.get("error", "")).partition(": ")
        detail_kind = detail.split(":", 1)[0]
        if detail_kind in ("no_triangles", "absurd_size", "unsupported"):
            raise AssetError(detail_kind, detail.split(": ", 1)[-1])
        raise AssetError("blender_import", str(info.get("error"))[:200])
    return info


def render_clip_blender(asset_path, cameras: CameraTrajectory, blender: Optional[str] = None, engine: str = "workbench",
                        samples: int = 16, normalize: str = "t0", max_extent: float = 1e6, timeout: float = 600.0,
                        animation: str = "longest") -> np.ndarray:
    """[N, H, W, 4] uint8 rendered by Blender (``animation``: Blender plays what its importer made active)."""
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="d4d_blender_") as tmp:
        work = Path(tmp)
        _run_job(asset_path, cameras, blender, engine, samples, normalize, max_extent, timeout, work)
        out = np.zeros((len(cameras), cameras.height, cameras.width, 4), np.uint8)
        for i in range(len(cameras)):
            with Image.open(work / f"{i:03d}.png") as img:
                out[i] = np.asarray(img.convert("RGBA"))
        return out


class BlenderAssetRenderer:
    """The :class:`AssetRenderer` interface on top of Blender subprocesses (one per trajectory)."""

    def __init__(self, asset_path, blender: Optional[str] = None, engine: str = "workbench", samples: int = 16,
                 animation: str = "longest", normalize: str = "t0", max_extent: float = 1e6, timeout: float = 600.0):
        self.path, self.kw = Path(asset_path), dict(blender=blender, engine=engine, samples=samples, normalize=normalize,
                                                     max_extent=max_extent, timeout=timeout)
        with tempfile.TemporaryDirectory(prefix="d4d_blender_") as tmp:
            info = _run_job(self.path, None, blender, engine, samples, normalize, max_extent, timeout, Path(tmp))
        self.duration = float(info.get("duration", 0.0))

    @property
    def has_animation(self) -> bool:
        return self.duration > 0

    def render(self, cameras: CameraTrajectory) -> np.ndarray:
        return render_clip_blender(self.path, cameras, **self.kw)

    def close(self) -> None:
        pass
