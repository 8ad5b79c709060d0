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
from diffusion4d.io import frames_to_float, join_inside, read_cameras, read_clip, read_manifest, read_meta


def frame_indices(available: int, wanted: int, mode: str = "uniform") -> np.ndarray:
    """Indices of ``wanted`` frames out of ``available`` (uniform over the orbit, or the first ones)."""
    if available < wanted:
        raise UserError(f"clip has {available} frames, the config asks for {wanted}")
    if mode == "first":
        return np.arange(wanted)
    return np.round(np.linspace(0, available - 1, wanted)).astype(int) if wanted > 1 else np.zeros(1, int)


STAGES = ("4d", "prior3d")


def usable_for(rec: Dict[str, Any], stage: str) -> bool:
    """Whether a manifest record serves training ``stage``: its ``stages`` list (written by curation),
    or for manifests from before that field, ``accepted`` (which serves both)."""
    if "stages" in rec:
        return stage in (rec.get("stages") or [])
    return rec.get("status") == "accepted"


def load_orbit_records(root: str, stage: str = "4d") -> List[Dict[str, Any]]:
    """Assets of ``<root>/manifest.jsonl`` usable for ``stage`` -> ``[{uid, caption, orbits: [{dynamic,
    static, motion_magnitude}]}]``, sorted by uid. Stage ``4d`` needs each orbit's dynamic and static clips; stage
    ``prior3d`` (the 3D-aware prior) only the static ones, so assets rejected for lacking motion count."""
    if stage not in STAGES:
        raise UserError(f"unknown training stage {stage!r}; valid: {', '.join(STAGES)}")
    root_path = Path(root)
    manifest = root_path / "manifest.jsonl"
    if not manifest.is_file():
        raise UserError(f"no curated manifest at {manifest} (run `diffusion4d curate` first, or fix data.root)")
    records = []
    for rec in read_manifest(manifest):
        if not usable_for(rec, stage):
            continue
        asset_dir = join_inside(root_path, rec["uid"], "manifest uid")  # a hostile manifest cannot read outside data.root
        meta = read_meta(asset_dir) or {}
        orbits = meta.get("orbits") or [
            {"dynamic": "dynamic", "static": "static", "motion_magnitude": meta.get("motion_magnitude", rec.get("motion_magnitude"))}
        ]
        needed = ("static",) if stage == "prior3d" else ("dynamic", "static")
        orbits = [o for o in orbits if all(join_inside(asset_dir, str(o[k]), f"meta.json orbit clip of {rec['uid']}").is_dir() for k in needed)]
        if orbits:
            caption = meta.get("caption") or rec.get("caption") or ""
            records.append({"uid": rec["uid"], "caption": caption, "orbits": orbits})
    # the manifest lists assets in the order curation finished them, which parallel workers change
    # from run to run: sorted by uid, the same curated data always gives the same batches
    records.sort(key=lambda r: r["uid"])
    if not records:
        what = "static clips (stage prior3d)" if stage == "prior3d" else "dynamic + static clips (stage 4d)"
        raise UserError(f"{manifest} lists no asset usable for training stage {stage} with {what}")
    return records


def round_up_significant(value: float, digits: int = 2) -> float:
    """The smallest number with ``digits`` significant digits that is >= ``value`` (> 0), as the
    float its decimal spelling parses to: 0.039825 -> 0.04, 0.0144 -> 0.015, 0.04 -> 0.04."""
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"value must be finite and > 0, got {value}")
    exponent = math.floor(math.log10(value)) - digits + 1
    mantissa = math.ceil(value / 10.0**exponent - 1e-9)  # in [10^(digits-1), 10^digits]; the slack absorbs the division's rounding
    return float(f"{mantissa}e{exponent}")


def data_motion_reference(root: str) -> float:
    """The frame-time gate's reference for ``model.frame_time_motion_reference: data``: the largest
    motion magnitude of the stage-``4d`` training orbits under ``root``, rounded up to two significant
    digits (every training clip's gate factor m / reference is then at most 1)."""
    magnitudes = [float(o["motion_magnitude"]) for rec in load_orbit_records(root, "4d") for o in rec["orbits"]
                  if o.get("motion_magnitude") is not None and math.isfinite(float(o["motion_magnitude"]))]
    largest = max(magnitudes, default=0.0)
    if not largest > 0:
        raise UserError(f"model.frame_time_motion_reference=data: no training orbit under {root} has a motion magnitude > 0 "
                        "(set a number instead)")
    return round_up_significant(largest)


def _load_frames(folder: Path, idx: np.ndarray, resolution: int) -> torch.Tensor:
    clip = read_clip(folder)
    rgb = frames_to_float(clip.frames[idx])  # [F, H, W, 3] over white
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float()
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1)


def foreground_fraction(frames: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Share of object pixels in each latent cell: ``frames`` ``[..., F, 3, R, R]`` in [0, 1] over
    white -> ``[..., F, h, w]`` in [0, 1] (``size = (h, w)``), from the project's one silhouette
    threshold (:func:`diffusion4d.metrics.silhouette`) averaged over each cell's pixels."""
    from diffusion4d.metrics import silhouette

    lead = frames.shape[:-3]
    mask = silhouette(frames.reshape(-1, *frames.shape[-3:]).float()).float()  # [N, R, R]
    cells = F.adaptive_avg_pool2d(mask[:, None], tuple(size))[:, 0]
    return cells.reshape(*lead, *cells.shape[-2:])


def cache_key(uid: str, orbit: int) -> str:
    return f"{uid}__orbit{orbit}"


class OrbitDataset(torch.utils.data.Dataset):
    """Items: ``frames``/``static_frames`` ``[F, 3, R, R]`` in [0, 1] (or, with a cache,
    ``latents``/``static_latents`` ``[C, F, h, w]`` and ``text_embeds`` ``[L, D]``),
    ``c2w`` ``[F, 4, 4]``, ``motion_magnitude`` (float, NaN if unknown), ``caption``, ``uid``.

    ``stage="prior3d"`` serves the static orbits as the videos to learn (``frames`` is the static
    orbit, ``motion_magnitude`` 0): training stage 1, the 3D-aware prior.

    ``zero_motion_prob`` (stage 4d): with this probability (drawn per index and epoch) a sample is
    its asset's static orbit, the same cameras with the animation frozen at t0, served as a video
    with ``motion_magnitude`` 0, which is its motion magnitude by definition (Eq. 1). Every asset then
    appears at m = 0 and at its own m, so the magnitude stops identifying the asset on small datasets.
    """

    def __init__(
        self,
        root: str,
        resolution: int,
        num_frames: int,
        frame_sampling: str = "uniform",
        random_orbit: bool = True,
        seed: int = 0,
        cache_dir: Optional[str] = None,
        stage: str = "4d",
        zero_motion_prob: float = 0.0,
    ):
        self.root = Path(root)
        self.stage = stage
        self.records = load_orbit_records(root, stage)
        self.resolution = resolution
        self.num_frames = num_frames
        self.frame_sampling = frame_sampling
        self.random_orbit = random_orbit
        self.seed = seed
        self.epoch = 0
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.zero_motion_prob = float(zero_motion_prob)

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
        static_dir = self.root / rec["uid"] / o["static"]
        if self.stage == "prior3d":
            cams = read_cameras(static_dir)
            idx = frame_indices(len(cams), self.num_frames, self.frame_sampling)
            static = _load_frames(static_dir, idx, self.resolution)
            frames, m = static, 0.0
        else:
            dyn = self.root / rec["uid"] / o["dynamic"]
            cams = read_cameras(dyn)
            idx = frame_indices(len(cams), self.num_frames, self.frame_sampling)
            frames, static, m = _load_frames(dyn, idx, self.resolution), _load_frames(static_dir, idx, self.resolution), o.get("motion_magnitude")
        return {
            "frames": frames,
            "static_frames": static,
            "c2w": torch.from_numpy(np.asarray(cams.c2w)[idx]).float(),
            "motion_magnitude": float("nan") if m is None else float(m),
            "caption": rec["caption"],
            "uid": rec["uid"],
        }

    def zero_motion(self, index: int) -> bool:
        """Whether sample ``index`` of this epoch is served as its static orbit with m = 0."""
        if self.stage != "4d" or self.zero_motion_prob <= 0:
            return False
        return bool(np.random.default_rng([self.seed, self.epoch, index, 104729]).random() < self.zero_motion_prob)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        orbit = self.orbit_choice(index)
        if self.cache_dir is None:
            item = self.load_pixels(index, orbit)
        else:
            from safetensors.torch import load_file

            rec = self.records[index]
            o = rec["orbits"][orbit]
            item = load_file(str(self.cache_dir / f"{cache_key(rec['uid'], orbit)}.safetensors"))
            m = 0.0 if self.stage == "prior3d" else o.get("motion_magnitude")
            item.update(motion_magnitude=float("nan") if m is None else float(m), caption=rec["caption"], uid=rec["uid"])
        if self.zero_motion(index):
            key, static = ("latents", "static_latents") if "latents" in item else ("frames", "static_frames")
            item[key] = item[static].clone()
            if "foreground" in item:
                item["foreground"] = item["static_foreground"].clone()
            item["motion_magnitude"] = 0.0
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


def _cache_path(dataset: OrbitDataset, cache_dir: Path, index: int, orbit: int) -> Path:
    return cache_dir / f"{cache_key(dataset.records[index]['uid'], orbit)}.safetensors"


def build_latent_cache(dataset: OrbitDataset, cache_dir: Path, encode_fn, text_fn, rank: int = 0, world: int = 1) -> int:
    """Write ``<cache_dir>/<uid>__orbit<k>.safetensors`` (latents, static_latents ``[C, F, h, w]``,
    foreground, static_foreground ``[F, h, w]`` (:func:`foreground_fraction`), c2w, text_embeds)
    for this rank's share of the orbits not cached yet; returns the number written.

    The share is every ``world``-th orbit starting at ``rank`` (in :meth:`OrbitDataset.all_items`
    order), so ``world`` ranks together write exactly what one process writes alone, each entry
    once (written to a temporary name, then renamed). ``encode_fn(frames [1, F, 3, R, R]) ->
    [1, C, F, h, w]``, ``text_fn([caption]) -> [1, L, D]``.
    """
    from safetensors.torch import save_file

    from diffusion4d.logging_utils import progress

    cache_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    mine = [item for n, item in enumerate(dataset.all_items()) if n % world == rank]
    todo = [(i, k) for i, k in mine if not _cache_path(dataset, cache_dir, i, k).is_file()]
    for i, k in progress(todo, desc=f"latent cache (rank {rank})"):
        px = dataset.load_pixels(i, k)
        with torch.no_grad():
            latents = encode_fn(px["frames"][None])[0].float().contiguous()
            static = latents if px["static_frames"] is px["frames"] else encode_fn(px["static_frames"][None])[0].float().contiguous()
            size = latents.shape[-2:]
            item = {
                "latents": latents,
                "static_latents": static.clone() if static is latents else static,
                "foreground": foreground_fraction(px["frames"], size).contiguous(),
                "static_foreground": foreground_fraction(px["static_frames"], size).contiguous(),
                "c2w": px["c2w"].contiguous(),
                "text_embeds": text_fn([px["caption"]])[0].float().contiguous(),
            }
        path = _cache_path(dataset, cache_dir, i, k)
        tmp = path.with_name(f".{path.name}.tmp-{rank}")
        save_file(item, str(tmp))
        tmp.replace(path)
        written += 1
    return written


def missing_cache_entries(dataset: OrbitDataset, cache_dir: Path) -> List[str]:
    """Cache files that should exist for ``dataset`` but do not (checked after every rank built its share)."""
    return [str(_cache_path(dataset, cache_dir, i, k)) for i, k in dataset.all_items() if not _cache_path(dataset, cache_dir, i, k).is_file()]


def cache_fingerprint(parts: Sequence[Any]) -> str:
    """Short hash naming a cache by what produced it (resolution, frames, encoders)."""
    return hashlib.sha1(repr(tuple(parts)).encode()).hexdigest()[:10]


def model_folder_identity(spec: Optional[str]) -> Any:
    """What a cache key should hold for a model given as a name or a folder: a folder (such as an autoencoder
    written by ``diffusion4d train-autoencoder``) by the content of its files, so that a model retrained into
    the same folder never meets the latents its predecessor cached; any other value (``base``, ``none``, a
    hub id) as it is."""
    folder = Path(spec) if spec else None
    if folder is None or not folder.is_dir():
        return spec
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")):
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return [spec, digest.hexdigest()]
