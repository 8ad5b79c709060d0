"""Sampling speed of Diffusion4DPipeline: DDIM-50 (the paper's sampler) vs DPM-Solver++-20.

    python benchmarks/sample.py [--quick] [--threads N] [--no-write]

Builds the tiny CPU preset's model exactly as the trainer does (``configs/train/tiny.yaml``:
pixel space, 32 px, 8 frames, random ModelScope-layout UNet + the offline MiniLM text encoder;
the weights are untrained, which does not change the cost) and times one video per sampler
with full 3D-aware guidance (w1 = 7, w2 = 0.5, prior = self: three branches in one batched
forward per step), then with the branches run one by one. Prints seconds per step and per
video and appends a dated "Sampling" section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def tiny_preset_pipeline(device: str):
    """The pipeline a ``configs/train/tiny.yaml`` checkpoint loads as (untrained weights)."""
    from diffusion4d.config import load_config
    from diffusion4d.pipelines import Diffusion4DPipeline
    from diffusion4d.train.model_setup import build_components
    from diffusion4d.train.train_config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "configs" / "train" / "tiny.yaml")
    parts = build_components(cfg.model, cfg.data)
    pipe = Diffusion4DPipeline(
        unet=parts.unet.eval(),
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        scheduler=parts.noise_scheduler,
        vae=parts.vae,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), cfg


def time_video(pipe, scheduler: str, steps: int, batch_branches: bool, device: str) -> dict:
    import torch

    pipe.use_scheduler(scheduler)
    start = time.perf_counter()
    out = pipe(
        "a robot dancing",
        motion_magnitude=0.02,
        num_inference_steps=steps,
        guidance_scale=7.0,
        prior_guidance_scale=0.5,
        prior="self",
        batch_branches=batch_branches,
        generator=torch.Generator().manual_seed(0),
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    return {"total": total, "per_step": out.timings["denoise"] / steps, **out.timings}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="DDIM-10 vs DPM-Solver++-4 (smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    start = time.perf_counter()
    pipe, cfg = tiny_preset_pipeline(device)
    load_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in pipe.unet.parameters())
    runs = [("ddim", 10 if args.quick else 50), ("dpm", 4 if args.quick else 20)]
    time_video(pipe, "ddim", 1, True, device)  # warm-up
    rows = []
    for batch_branches in (True, False):
        for name, steps in runs:
            r = time_video(pipe, name, steps, batch_branches, device)
            label = f"{'DDIM' if name == 'ddim' else 'DPM-Solver++'}-{steps}"
            mode = "batched" if batch_branches else "one by one"
            rows.append((label, mode, r["per_step"], r["total"]))
            print(f"{label:18s} branches {mode:10s}: {r['per_step'] * 1000:8.1f} ms/step  {r['total']:7.2f} s/video", flush=True)
    if args.no_write:
        return 0
    res = cfg.data.resolution
    lines = [
        f"\n## Sampling ({datetime.date.today().isoformat()})\n",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} threads {torch.get_num_threads()}, "
        f"device {device}, load average {os.getloadavg()[0]:.1f} at the end (other jobs running inflate CPU times), "
        f"Python {platform.python_version()}; command: `python benchmarks/sample.py"
        f"{' --quick' if args.quick else ''}{f' --threads {args.threads}' if args.threads else ''}`.\n",
        f"Model: the tiny CPU preset (configs/train/tiny.yaml): pixel space, {cfg.data.num_frames} frames at {res}x{res}, "
        f"UNet {n_params / 1e6:.2f} M parameters, MiniLM text encoder; untrained weights (cost only). "
        f"One video, 3D-aware CFG w1 = 7, w2 = 0.5, prior = self (3 branches). Pipeline load {load_s:.1f} s.\n",
        "| sampler | branches | ms / step | s / video |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2] * 1000:.1f} | {r[3]:.2f} |" for r in rows]
    batched = {r[0]: r[3] for r in rows if r[1] == "batched"}
    names = list(batched)
    if len(names) == 2:
        lines.append(f"\n{names[1]} is {batched[names[0]] / batched[names[1]]:.1f}x faster per video than {names[0]}.")
    results = HERE / "RESULTS.md"
    with open(results, "a") as fh:
        if not results.exists() or results.stat().st_size == 0:
            fh.write("# Benchmark results\n")
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
