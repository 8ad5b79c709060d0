"""Reconstruction speed: compiled cpu and tiled torch rasterisers vs the dense reference (and gsplat on CUDA),
plus the wall time of a preset on this machine. Prints numbers and appends a dated section to
benchmarks/RESULTS.md.

    python benchmarks/recon.py [--size 128] [--gaussians 2000] [--preset demo] [--skip-preset]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import torch


def _scene(n: int, size: int, device: str):
    from diffusion4d.cameras import orbit_trajectory
    from diffusion4d.recon.testing import synthetic_scene

    s = synthetic_scene(n, seed=0)
    tr = orbit_trajectory("dynamic", 1, width=size, height=size, elevation=15.0)
    vm = torch.as_tensor(np.linalg.inv(tr.c2w), dtype=torch.float32)
    K = torch.as_tensor(tr.K, dtype=torch.float32)
    params = [s["means"], s["quats"], s["scales"], s["opacities"], s["colors"]]
    return [p.to(device).requires_grad_(True) for p in params], vm.to(device), K.to(device)


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def rasterizer_speed(size: int, n: int, reps: int) -> dict:
    from diffusion4d.recon.rasterize import rasterize
    from diffusion4d.recon.testing import rasterize_dense

    params, vm, K = _scene(n, size, "cpu")

    def step(render):
        img = render()
        img.mean().backward()
        return img

    tiled = lambda: step(lambda: rasterize(*params, vm, K, size, size, backend="torch", background=1.0)[0])  # noqa: E731
    dense = lambda: step(lambda: rasterize_dense(*params, vm, K, size, size, background=1.0)[0])  # noqa: E731
    with torch.no_grad():
        a = rasterize(*params, vm, K, size, size, backend="torch", background=1.0)[0]
        b = rasterize_dense(*params, vm, K, size, size, background=1.0)[0]
    out = {
        "size": size,
        "gaussians": n,
        "max_abs_diff": float((a - b).abs().max()),
        "tiled_it_s": 1.0 / _time(tiled, reps),
        "dense_it_s": 1.0 / _time(dense, max(1, reps // 3)),
    }
    out["speedup"] = out["tiled_it_s"] / out["dense_it_s"]
    from diffusion4d.recon import cpu_kernel

    if cpu_kernel.available():
        with torch.no_grad():
            c = rasterize(*params, vm, K, size, size, backend="cpu", background=1.0)[0]
        out["cpu_max_abs_diff"] = float((c - b).abs().max())
        out["cpu_it_s"] = 1.0 / _time(lambda: step(lambda: rasterize(*params, vm, K, size, size, backend="cpu", background=1.0)[0]), reps)
        out["cpu_vs_tiled"] = out["cpu_it_s"] / out["tiled_it_s"]
    else:
        out["cpu_error"] = cpu_kernel.error()
    if torch.cuda.is_available():
        try:
            gp, gvm, gK = _scene(n, size, "cuda")

            def gs():
                img = rasterize(*gp, gvm, gK, size, size, backend="gsplat", background=1.0)[0]
                img.mean().backward()
                torch.cuda.synchronize()

            out["gsplat_it_s"] = 1.0 / _time(gs, reps * 10)
        except Exception as err:  # report, do not hide
            out["gsplat_error"] = str(err)
    return out


def preset_wall_time(preset: str, size: int, frames: int) -> dict:
    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.testing import write_synthetic_asset

    with tempfile.TemporaryDirectory() as tmp:
        clip = write_synthetic_asset(Path(tmp), frames=frames, size=size, num=600)
        t = time.perf_counter()
        m = reconstruct(clip, Path(tmp) / "out", preset=preset, backend="torch", holdout=4, device="cpu")
        wall = time.perf_counter() - t
    return {"preset": preset, "input": f"synthetic {frames} frames {size}px", "wall_s": wall,
            "psnr_heldout": m["psnr_heldout"], "num_gaussians": m["num_gaussians"], "timings": m["timings"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--gaussians", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--preset-size", type=int, default=64)
    ap.add_argument("--skip-preset", action="store_true")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    speed = rasterizer_speed(args.size, args.gaussians, args.reps)
    print(json.dumps(speed, indent=1))
    preset = None if args.skip_preset else preset_wall_time(args.preset, args.preset_size, 24)
    if preset:
        print(json.dumps(preset, indent=1))
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, threads {torch.get_num_threads()}"
    lines = [
        f"\n## Reconstruction speed ({datetime.date.today().isoformat()}, {machine})\n",
        f"- Rasteriser, {speed['size']}x{speed['size']}, {speed['gaussians']} Gaussians, forward+backward, 1 view: "
        f"tiled torch {speed['tiled_it_s']:.2f} it/s, dense reference {speed['dense_it_s']:.3f} it/s, "
        f"speed-up {speed['speedup']:.1f}x, max |difference| {speed['max_abs_diff']:.2e}",
    ]
    if "cpu_it_s" in speed:
        lines.append(f"- compiled cpu kernel: {speed['cpu_it_s']:.2f} it/s ({speed['cpu_vs_tiled']:.1f}x the tiled torch one), "
                     f"max |difference| to the dense reference {speed['cpu_max_abs_diff']:.2e}")
    if "gsplat_it_s" in speed:
        lines.append(f"- gsplat (CUDA): {speed['gsplat_it_s']:.1f} it/s")
    if preset:
        lines.append(
            f"- preset `{preset['preset']}` on {preset['input']}: wall {preset['wall_s']:.1f} s "
            f"(coarse {preset['timings']['coarse']:.1f} s, fine {preset['timings']['fine']:.1f} s, export "
            f"{preset['timings']['export']:.1f} s), held-out PSNR {preset['psnr_heldout']:.2f} dB"
        )
    with open(args.results, "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
