"""The round trip that checks an export: render the exported ``.glb`` with the curation's fast
renderer from a clip's cameras and compare it with the Gaussian renders and the ground truth.

Normalisation: curation puts an asset into the unit box by its bounds at t0; the Gaussians were
fitted in that box already, so here the renderer's normalisation is replaced by the identity
(``center 0, scale 1``) and the export is drawn exactly where the Gaussians were.

Metrics per frame: silhouette IoU (alpha > 0.5) and PSNR of the RGB composited over white
(the contract's compositing, ``frames_to_float``).
Also helpers to make small procedural test assets (procedural GLB -> dynamic + static clips).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

PathLike = Union[str, Path]


def render_glb(glb: PathLike, cameras, msaa: int = 4) -> np.ndarray:
    """RGBA uint8 ``[N, H, W, 4]`` of ``glb`` from ``cameras`` (frame i at camera i, time i),
    without unit-box normalisation."""
    from diffusion4d.data_curation.render import AssetRenderer, Normalization

    r = AssetRenderer(glb, msaa=msaa)
    r.normalization = Normalization(center=np.zeros(3), scale=1.0, extent=1.0)
    try:
        return r.render(cameras)
    finally:
        r.close()


def silhouette_iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-frame IoU ``[N]`` of the masks ``alpha > threshold`` of RGBA uint8 frames ``[N, H, W, 4]``."""
    ma = a[..., 3].astype(np.float32) / 255.0 > threshold
    mb = b[..., 3].astype(np.float32) / 255.0 > threshold
    inter = (ma & mb).reshape(len(a), -1).sum(1)
    union = (ma | mb).reshape(len(a), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def over_white(frames: np.ndarray) -> np.ndarray:
    f = frames.astype(np.float64) / 255.0
    return f[..., :3] * f[..., 3:4] + (1.0 - f[..., 3:4])


def psnr_white(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR ``[N]`` (dB) of RGBA uint8 frames composited over white."""
    mse = ((over_white(a) - over_white(b)) ** 2).reshape(len(a), -1).mean(1)
    return 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))


def compare(pred: np.ndarray, ref: np.ndarray) -> Dict[str, object]:
    iou, p = silhouette_iou(pred, ref), psnr_white(pred, ref)
    return {"iou_mean": float(iou.mean()), "iou_min": float(iou.min()), "psnr_mean": float(p.mean()),
            "iou_per_frame": [round(float(x), 4) for x in iou], "psnr_per_frame": [round(float(x), 2) for x in p]}


def roundtrip(glb: PathLike, recon_dir: PathLike, ground_truth: Optional[PathLike] = None) -> dict:
    """Render ``glb`` with the cameras of ``recon_dir/dynamic`` (the reconstruction's re-rendered
    clip: same cameras and times as its input) and compare with those Gaussian renders and with
    the ground-truth clip (default: ``metrics.json``'s ``clip``, when it exists)."""
    import json

    from diffusion4d.io import read_clip

    recon_dir = Path(recon_dir)
    gauss = read_clip(recon_dir / "dynamic")
    mesh = render_glb(glb, gauss.cameras)
    out = {"vs_gaussians": compare(mesh, gauss.frames)}
    if ground_truth is None and (recon_dir / "metrics.json").is_file():
        ground_truth = json.loads((recon_dir / "metrics.json").read_text()).get("clip")
    if ground_truth is not None and (Path(ground_truth) / "cameras.json").is_file():
        gt = read_clip(ground_truth)
        if gt.frames.shape[1:3] == mesh.shape[1:3]:
            out["vs_ground_truth"] = compare(mesh, gt.frames)
            out["gaussians_vs_ground_truth"] = compare(gauss.frames, gt.frames)
    out["mesh_frames"] = mesh
    return out


def write_procedural_clips(root: PathLike, index: int = 0, seed: int = 0, frames: int = 8, size: int = 32,
                           elevation: float = 15.0) -> Path:
    """Procedural asset ``index`` -> ``<root>/<uid>/{asset.glb, dynamic, static}`` rendered by the
    fast renderer (curation's default t0 normalisation); returns the dynamic clip folder."""
    from diffusion4d.data_curation.procedural.assets import build_asset_glb, sample_asset_spec
    from diffusion4d.data_curation.render import render_clip
    from diffusion4d.cameras import orbit_trajectory
    from diffusion4d.io import write_clip

    spec = sample_asset_spec(seed, index)
    folder = Path(root) / spec.uid
    folder.mkdir(parents=True, exist_ok=True)
    glb = folder / "asset.glb"
    glb.write_bytes(build_asset_glb(spec))
    duration = spec.duration_s or 1.0
    for mode in ("dynamic", "static"):
        cams = orbit_trajectory(mode, frames, width=size, height=size, elevation=elevation, duration_seconds=duration)
        write_clip(folder / mode, render_clip(glb, cams), cams)
    return folder / "dynamic"


def benchmark(output: PathLike, assets=(1, 4, 5, 0), size: int = 64, frames: int = 12, preset: str = "demo",
              overrides=("fine.rigid_knots=-1", "fine.time_curriculum=0.5"), seed: int = 0) -> list:
    """Procedural assets -> clips -> reconstruction -> export -> round trip; one JSON line per asset
    appended to ``output/results.jsonl`` (the numbers of benchmarks/RESULTS.md, "Export")."""
    import json
    import shutil
    import subprocess
    import time

    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.mesh_export import export_glb

    output = Path(output)
    rows = []
    for idx in assets:
        clip = write_procedural_clips(output, idx, seed=seed, frames=frames, size=size)
        out = output / f"{clip.parent.name}-{preset}-{size}px-{frames}f"
        t = time.perf_counter()
        m = reconstruct(clip, out, preset=preset, overrides=["output.videos=false", "output.ply=false", f"resolution={size}", *overrides])
        t_recon = time.perf_counter() - t
        rep = export_glb(out, out / "model.glb", viewer=True)
        r = roundtrip(out / "model.glb", out)
        row = {"asset": clip.parent.name, "size": size, "frames": frames, "preset": preset, "overrides": list(overrides),
               "recon_seconds": t_recon, "psnr_train": m["psnr_train"], "num_gaussians": m["num_gaussians"],
               "export": {k: rep[k] for k in ("bytes", "vertices", "faces", "watertight", "repair", "colour", "seconds", "iso")},
               **{k: v for k, v in r.items() if k != "mesh_frames"}}
        validator = Path(__file__).resolve().parents[1] / "tools" / "gltf_validator"
        if shutil.which("node") and (validator / "node_modules").is_dir():
            proc = subprocess.run(["node", str(validator / "validate.js"), str(out / "model.glb")], capture_output=True, text=True)
            f = json.loads(proc.stdout)["files"][0]
            row["validator"] = {"errors": f["errors"], "warnings": f["warnings"]}
        with open(output / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


if __name__ == "__main__":  # python -m diffusion4d.recon.glb_roundtrip OUTPUT [assets=1,4,5,0] [size=64] [frames=12] [preset=demo]
    import sys

    kw = dict(a.split("=", 1) for a in sys.argv[2:])
    benchmark(sys.argv[1], tuple(int(x) for x in kw.get("assets", "1,4,5,0").split(",")), int(kw.get("size", 64)),
              int(kw.get("frames", 12)), kw.get("preset", "demo"))


__all__ = ["benchmark", "compare", "psnr_white", "render_glb", "roundtrip", "silhouette_iou", "write_procedural_clips"]
