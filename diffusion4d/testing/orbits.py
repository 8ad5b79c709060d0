"""A tiny curated dataset written directly in the contract-1 layout (tests, benchmarks).

Each asset is a coloured disc that moves (dynamic orbit) or stays at its t0 position (static
orbit) over a white background with alpha, rendered with the real orbit cameras; two orbits per
asset, manifest + meta.json like the curation stage writes. No renderer involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.io import ManifestRecord, ManifestWriter, frames_to_float, write_clip, write_meta
from diffusion4d.motion import pixel_motion_magnitude


def _disc_frames(num_frames: int, size: int, color, speed: float, phase: float, moving: bool) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    frames = np.zeros((num_frames, size, size, 4), np.uint8)
    for i in range(num_frames):
        t = i / max(num_frames - 1, 1) if moving else 0.0
        cx = 0.5 + 0.25 * np.cos(phase + speed * 2 * np.pi * t)
        cy = 0.5 + 0.25 * np.sin(phase + speed * 2 * np.pi * t)
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < 0.04
        frames[i, mask, :3] = color
        frames[i, mask, 3] = 255
    return frames


def write_synthetic_dataset(root, num_assets: int = 3, num_frames: int = 8, size: int = 32, orbits: int = 2, seed: int = 0) -> List[str]:
    """Write ``num_assets`` accepted assets under ``root``; returns their uids."""
    import torch

    root = Path(root)
    rng = np.random.default_rng(seed)
    writer = ManifestWriter(root / "manifest.jsonl")
    uids = []
    for a in range(num_assets):
        uid = f"synthetic{a:03d}"
        color = rng.integers(0, 200, 3)
        speed = float(rng.uniform(0.3, 1.0))
        orbit_meta = []
        for k in range(orbits):
            start = 0.0 if k == 0 else float(rng.uniform(0, 360))
            suffix = "" if k == 0 else f"_{k}"
            cams_dyn = orbit_trajectory("dynamic", num_frames, start_azimuth=start, width=size, height=size)
            cams_sta = orbit_trajectory("static", num_frames, start_azimuth=start, width=size, height=size)
            dyn = _disc_frames(num_frames, size, color, speed, np.deg2rad(start), True)
            sta = _disc_frames(num_frames, size, color, speed, np.deg2rad(start), False)
            write_clip(root / uid / f"dynamic{suffix}", dyn, cams_dyn)
            write_clip(root / uid / f"static{suffix}", sta, cams_sta)
            f = lambda x: torch.from_numpy(frames_to_float(x)).permute(0, 3, 1, 2)[None]  # noqa: E731
            m = float(pixel_motion_magnitude(f(dyn), f(sta))[0])
            orbit_meta.append({"dynamic": f"dynamic{suffix}", "static": f"static{suffix}", "start_azimuth": start, "elevation": 0.0, "motion_magnitude": m})
        caption = f"a {['red', 'green', 'blue'][a % 3]} disc circling {'slowly' if speed < 0.6 else 'fast'}"
        write_meta(root / uid, {
            "uid": uid, "source": "synthetic", "caption": caption, "status": "accepted", "reason": "",
            "motion_magnitude": orbit_meta[0]["motion_magnitude"], "frames": num_frames, "resolution": size,
            "renderer": "synthetic", "orbits": orbit_meta,
        })
        writer.append(ManifestRecord(uid=uid, source="synthetic", status="accepted", reason="", motion_magnitude=orbit_meta[0]["motion_magnitude"],
                                     caption=caption, renderer="synthetic", seconds=0.0))
        uids.append(uid)
    return uids
