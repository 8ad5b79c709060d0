"""Curated orbital videos as training samples, and the on-disk latent cache.

A sample is one accepted asset of ``<root>/manifest.jsonl`` (contract 1): one of its orbits
(``meta.json`` ``orbits``; chosen at random per sample, deterministically from
``(seed, epoch, index)`` so resumed runs see the same data), its dynamic and static clips,
their cameras, the caption and the orbit's motion magnitude. Frames are composited over white,
resized to ``resolution`` and subsampled to ``num_frames``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from diffusion4d.errors import UserError
from diffusion4d.io import frames_to_float, read_cameras, read_clip, read_manifest, read_meta


def frame_indices(available: int, wanted: int, mode: str = "uniform") -> np.ndarray:
    """Indices of ``wanted`` frames out of ``available`` (uniform over the orbit, or the first ones)."""
    if available < wanted:
        raise UserError(f"clip has {available} frames, the config asks for {wanted}")
    if mode == "first":
        return np.arange(wanted)
    return np.round(np.linspace(0, available - 1, wanted)).astype(int) if wanted > 1 else np.zeros(1, int)


def load_orbit_records(root: str) -> List[Dict[str, Any]]:
    """Accepted assets of ``<root>/manifest.jsonl`` -> ``[{uid, caption, orbits: [{dynamic, static, motion_magnitude}]}]``."""
    root_path = Path(root)
    manifest = root_path / "manifest.jsonl"
    if not manifest.is_file():
        raise UserError(f"no curated manifest at {manifest} (run `diffusion4d curate` first, or fix data.root)")
    records = []
    for rec in read_manifest(manifest):
        if rec.get("status") != "accepted":
            continue
        meta = read_meta(root_path / rec["uid"]) or {}
        orbits = meta.get("orbits") or [
            {"dynamic": "dynamic", "static": "static", "motion_magnitude": meta.get("motion_magnitude", rec.get("motion_magnitude"))}
        ]
        orbits = [o for o in orbits if (root_path / rec["uid"] / o["dynamic"]).is_dir() and (root_path / rec["uid"] / o["static"]).is_dir()]
        if orbits:
            caption = meta.get("caption") or rec.get("caption") or ""
            records.append({"uid": rec["uid"], "caption": caption, "orbits": orbits})
    if not records:
        raise UserError(f"{manifest} lists no accepted asset with dynamic + static clips")
    return records


def _load_frames(folder: Path, idx: np.ndarray, resolution: int) -> torch.Tensor:
    clip = read_clip(folder)
    rgb = frames_to_float(clip.frames[idx])  # [F, H, W, 3] over white
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def cache_key(uid: str, orbit: int) -> str:
    return f"{uid}__orbit{orbit}"


class OrbitDataset(torch.utils.data.Dataset):
    """Items: ``frames``/``static_frames`` ``[F, 3, R, R]`` in [0, 1] (or, with a cache,
    ``latents``/``static_latents`` ``[C, F, h, w]`` and ``text_embeds`` ``[L, D]``),
    ``c2w`` ``[F, 4, 4]``, ``motion_magnitude`` (float, NaN if unknown), ``caption``, ``uid``."""

    def __init__(
        self,
        root: str,
        resolution: int,
        num_frames: int,
        frame_sampling: str = "uniform",
        random_orbit: bool = True,
        seed: int = 0,
        cache_dir: Optional[str] = None,
    ):
        self.root = Path(root)
        self.records = load_orbit_records(root)
        self.resolution = resolution
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.random_orbit = random_orbit
        self.seed = seed
        self.epoch = 0
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def orbit_choice(self, index: int) -> int:
        n = len(self.records[index]["orbits"])
        if not self.random_orbit or n == 1:
            return 0
        return int(np.random.default_rng([self.seed, self.epoch, index]).integers(n))

    def load_pixels(self, index: int, orbit: int) -> Dict[str, Any]:
        rec = self.records[index]
        o = rec["orbits"][orbit]
        dyn = self.root / rec["uid"] / o["dynamic"]
        cams = read_cameras(dyn)
        idx = frame_indices(len(cams), self.num_frames, self.frame_sampling)
        m = o.get("motion_magnitude")
        return {
            "frames": _load_frames(dyn, idx, self.resolution),
            "static_frames": _load_frames(self.root / rec["uid"] / o["static"], idx, self.resolution),
            "c2w": torch.from_numpy(np.asarray(cams.c2w)[idx]).float(),
            "motion_magnitude": float("nan") if m is None else float(m),
            "caption": rec["caption"],
            "uid": rec["uid"],
        }

    def __getitem__(self, index: int) -> Dict[str, Any]:
        orbit = self.orbit_choice(index)
        if self.cache_dir is None:
            return self.load_pixels(index, orbit)
        from safetensors.torch import load_file

        rec = self.records[index]
        o = rec["orbits"][orbit]
        item = load_file(str(self.cache_dir / f"{cache_key(rec['uid'], orbit)}.safetensors"))
        m = o.get("motion_magnitude")
        item.update(motion_magnitude=float("nan") if m is None else float(m), caption=rec["caption"], uid=rec["uid"])
        return item

    def all_items(self) -> Iterator[tuple]:
        """``(index, orbit)`` for every orbit of every asset (what the cache holds)."""
        for i, rec in enumerate(self.records):
            for k in range(len(rec["orbits"])):
                yield i, k


def collate(items: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if torch.is_tensor(values[0]):
            out[key] = torch.stack(values)
        elif isinstance(values[0], float):
            out[key] = torch.tensor(values, dtype=torch.float32)
        else:
            out[key] = values
    return out


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int, rank: int, world: int) -> List[List[int]]:
    """This rank's batches for ``epoch``: a seeded permutation, padded to a multiple of
    ``world * batch_size`` (wrapping around), interleaved over ranks."""
    perm = np.random.default_rng([seed, 7919, epoch]).permutation(num_items).tolist()
    per_step = world * batch_size
    total = max(per_step, math.ceil(num_items / per_step) * per_step)
    perm = (perm * (total // num_items + 1))[:total]
    mine = perm[rank::world]
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def build_latent_cache(dataset: OrbitDataset, cache_dir: Path, encode_fn, text_fn) -> int:
    """Write ``<cache_dir>/<uid>__orbit<k>.safetensors`` (latents, static_latents, c2w, text_embeds)
    for every orbit that is not cached yet; returns the number written. ``encode_fn(frames [1, F, 3, R, R])
    -> [1, C, F, h, w]``, ``text_fn([caption]) -> [1, L, D]``."""
    from safetensors.torch import save_file

    from diffusion4d.logging_utils import progress

    cache_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    todo = [(i, k) for i, k in dataset.all_items() if not (cache_dir / f"{cache_key(dataset.records[i]['uid'], k)}.safetensors").is_file()]
    for i, k in progress(todo, desc="latent cache"):
        px = dataset.load_pixels(i, k)
        with torch.no_grad():
            item = {
                "latents": encode_fn(px["frames"][None])[0].float().contiguous(),
                "static_latents": encode_fn(px["static_frames"][None])[0].float().contiguous(),
                "c2w": px["c2w"].contiguous(),
                "text_embeds": text_fn([px["caption"]])[0].float().contiguous(),
            }
        path = cache_dir / f"{cache_key(dataset.records[i]['uid'], k)}.safetensors"
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(item, str(tmp))
        tmp.replace(path)
        written += 1
    return written


def cache_fingerprint(parts: Sequence[Any]) -> str:
    """Short hash naming a cache by what produced it (resolution, frames, encoders)."""
    return hashlib.sha1(repr(tuple(parts)).encode()).hexdigest()[:10]
