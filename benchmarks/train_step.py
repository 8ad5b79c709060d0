"""Training step time and peak memory for the tiny preset on CPU, with/without the latent cache,
and the overhead of the 4D conditioning over the plain base UNet.

    python benchmarks/train_step.py [--steps 10] [--threads 1] [--no-append]

Each configuration runs in its own subprocess (clean peak RSS). Appends a dated "Training"
section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_trainer(data: str, cache: bool, steps: int, threads: int) -> dict:
    import torch

    from diffusion4d.config import load_config
    from diffusion4d.train.train_config import TrainConfig
    from diffusion4d.train.trainer import Trainer

    out = tempfile.mkdtemp(prefix="bench_train_")
    cfg = load_config(TrainConfig, REPO / "configs/train/tiny.yaml",
                      [f"data.root={data}", f"output_dir={out}", f"data.cache_latents={str(cache).lower()}", "report_to=none", f"num_threads={threads}"])
    tr = Trainer(cfg)
    tr.setup()
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        batch = tr.batch_at(i)
        loss = tr.loss_on(batch, i)["loss"]
        tr.acc.backward(loss)
        tr.optimizer.step()
        tr.optimizer.zero_grad()
        if i >= 2:  # warm-up excluded
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_step_s": times[len(times) // 2], "min_step_s": times[0], "peak_rss_mb": _peak_rss_mb(), "threads": torch.get_num_threads()}


def bench_overhead(steps: int, threads: int, four_d: bool) -> dict:
    import torch

    from diffusion4d.train.model_setup import tiny_base_unet
    from diffusion4d.train.train_config import ModelConfig
    from diffusion4d.models import UNet4DConditionModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = tiny_base_unet(ModelConfig(), 3, 32, 384)
    model = UNet4DConditionModel.from_base_model(base, num_frames=8) if four_d else base
    x, ctx, t = torch.randn(2, 3, 8, 32, 32), torch.randn(2, 77, 384), torch.tensor([10, 500])
    extra = {"motion_magnitude": torch.tensor([0.02, 0.05]), "camera_c2w": torch.randn(2, 8, 4, 4)} if four_d else {}
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        model(x, t, ctx, **extra).sample.square().mean().backward()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_step_s": times[len(times) // 2], "min_step_s": times[0], "peak_rss_mb": _peak_rss_mb()}


def _sub(args: list) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DIFFUSION4D_NO_PROGRESS": "1"}
    p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--child", default=None)
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    if a.child:
        kind, flag = a.child.split(":")
        res = bench_trainer(a.data, flag == "1", a.steps, a.threads) if kind == "trainer" else bench_overhead(a.steps, a.threads, flag == "1")
        print(json.dumps(res))
        return
    from diffusion4d.testing.orbits import write_synthetic_dataset

    data = tempfile.mkdtemp(prefix="bench_data_")
    write_synthetic_dataset(data, num_assets=3, num_frames=8, size=32)
    common = ["--steps", str(a.steps), "--threads", str(a.threads), "--data", data]
    rows = {
        "tiny, no cache (PNG decode + MiniLM per step)": _sub(["--child", "trainer:0", *common]),
        "tiny, latent cache": _sub(["--child", "trainer:1", *common]),
        "UNet fwd+bwd, plain base UNet3D": _sub(["--child", "unet:0", *common]),
        "UNet fwd+bwd, UNet4D (motion + camera)": _sub(["--child", "unet:1", *common]),
    }
    keys = list(rows)
    overhead = rows[keys[3]]["median_step_s"] / rows[keys[2]]["median_step_s"] - 1
    lines = [f"| {k} | {v['median_step_s']:.3f} | {v['min_step_s']:.3f} | {v['peak_rss_mb']:.0f} |" for k, v in rows.items()]
    text = "\n".join([
        "", f"## Training ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPU cores, torch threads {a.threads}, CPU only)",
        f"`python benchmarks/train_step.py --steps {a.steps} --threads {a.threads}`; tiny preset (32 px, 8 frames, batch 2, pixel space);"
        " median/min over the steps after 2 warm-up steps; peak RSS of the measuring process. The machine was shared with other jobs.",
        "", "| configuration | median s/step | min s/step | peak RSS MB |", "|---|---|---|---|", *lines, "",
        f"4D conditioning overhead over the plain base UNet (median): {overhead * 100:+.1f}% (target < 5%).", "",
    ])
    print(text)
    if not a.no_append:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
