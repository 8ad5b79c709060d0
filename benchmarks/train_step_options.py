"""Stage-2 step time of the demo's tiny model with and without the trainer's fast paths.

On a finished demo run (its curated data, autoencoder and stage-1 prior), builds the stage-2 trainer
exactly as the demo does, then times full optimisation steps (forward, backward, gradient clipping,
AdamW, EMA) under six settings, interleaved round by round so a machine whose speed drifts
affects them alike:

* ``reference``: AdamW's per-parameter loop, EMA's per-parameter loop, temporal dropout 0.1
  (the ModelScope architecture's);
* ``fused``: fused AdamW + foreach EMA, temporal dropout 0.1;
* ``no-dropout``: the loops, temporal dropout 0;
* ``fast``: both (``optim.fused=true model.temporal_dropout=0``; the presets run ``reference``);
* ``math-attention``: the reference with diffusers' classic attention processor (matmul, softmax,
  matmul) in place of torch's fused scaled-dot-product kernel, which is slow on CPU at the tiny
  model's head size of 8;
* ``fused + math-attention``: both.

    python benchmarks/train_step_options.py --demo demo_out [--rounds 6 --steps 15] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: name -> (fused update, temporal dropout, attention kernel: "sdpa" = torch's fused CPU kernel, "math" = matmul-softmax-matmul)
VARIANTS = {"reference": (False, 0.1, "sdpa"), "fused": (True, 0.1, "sdpa"), "no-dropout": (False, 0.0, "sdpa"),
            "fast": (True, 0.0, "sdpa"), "math-attention": (False, 0.1, "math"), "fused + math-attention": (True, 0.1, "math")}


def build_trainer(demo: Path, threads: int):
    from diffusion4d.config import load_config
    from diffusion4d.train.train_config import TrainConfig
    from diffusion4d.train.trainer import Trainer

    state = json.loads((demo / "demo_state.json").read_text())["stages"]
    inputs = state["train"].get("inputs", {})
    prior = state["train_prior"]["checkpoint"]
    size = int(state["autoencoder"].get("inputs", {}).get("train_resolution", 64))
    overrides = [
        f"data.root={demo / 'curated'}", f"output_dir={tempfile.mkdtemp(prefix='bench_step_')}", "report_to=none",
        f"num_threads={threads}", f"data.resolution={size}", "data.num_frames=8", f"model.vae={demo / 'autoencoder'}",
        f"model.base={prior}", "model.text_encoder=base", *inputs.get("train_overrides", []), *inputs.get("stage2_overrides", []),
    ]  # fmt: skip
    trainer = Trainer(load_config(TrainConfig, REPO / "configs/train/tiny.yaml", overrides))
    trainer.setup()
    return trainer


def set_attention(unet, kernel: str) -> None:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor2_0() if kernel == "sdpa" else AttnProcessor())


def time_steps(trainer, fused: bool, dropout: float, kernel: str, steps: int, start: int) -> list:
    import torch
    from diffusers.training_utils import EMAModel

    from diffusion4d.train.model_setup import make_optimizer, set_temporal_dropout

    unet = trainer.acc.unwrap_model(trainer.unet)
    set_temporal_dropout(unet, dropout)
    set_attention(unet, kernel)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, trainer.cfg.optim, fused=fused)
    ema = EMAModel(params, decay=0.999, foreach=fused)
    times = []
    for i in range(start, start + steps):
        t0 = time.perf_counter()
        out = trainer.loss_on(trainer.batch_at(i), i)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(params)
        times.append(time.perf_counter() - t0)
    return times[1:]  # the first step of a round builds the optimizer state


def time_update(trainer, rounds: int = 3, steps: int = 30) -> dict:
    """Milliseconds of gradient clipping, AdamW and EMA alone (median over ``steps``, per round) on the
    stage-2 UNet's parameters with random gradients: loop vs fused AdamW, loop vs foreach EMA."""
    import torch
    from diffusers.training_utils import EMAModel

    from diffusion4d.train.model_setup import make_optimizer

    params = [p for p in trainer.acc.unwrap_model(trainer.unet).parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = {}
    for _ in range(rounds):
        for fast in (False, True):
            optimizer = make_optimizer(params, trainer.cfg.optim, fused=fast)
            ema = EMAModel(params, decay=0.999, foreach=fast)
            parts = {"clip": [], "adamw": [], "ema": []}
            for _ in range(steps):
                t0 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                t1 = time.perf_counter()
                optimizer.step()
                t2 = time.perf_counter()
                ema.step(params)
                t3 = time.perf_counter()
                parts["clip"].append(t1 - t0)
                parts["adamw"].append(t2 - t1)
                parts["ema"].append(t3 - t2)
            key = "fused AdamW + foreach EMA" if fast else "loops"
            out.setdefault(key, []).append({k: 1e3 * statistics.median(v) for k, v in parts.items()})
    return {k: {part: statistics.median(r[part] for r in rows) for part in rows[0]} for k, rows in out.items()}, len(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", required=True, type=Path, help="a finished `diffusion4d demo --output` folder")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15, help="steps per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=None, help="append a dated section to this file")
    args = parser.parse_args()
    trainer = build_trainer(args.demo, args.threads)
    update, n_params = time_update(trainer)
    update_table = "\n".join(["| update | clip ms | AdamW ms | EMA ms |", "|---|---|---|---|",
                              *[f"| {k} | {v['clip']:.1f} | {v['adamw']:.1f} | {v['ema']:.1f} |" for k, v in update.items()]])
    print(update_table, flush=True)
    times = {name: [] for name in VARIANTS}
    step = 0
    for r in range(args.rounds):
        for name, (fused, dropout, kernel) in VARIANTS.items():
            times[name] += time_steps(trainer, fused, dropout, kernel, args.steps, step)
            step += args.steps
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {statistics.median(t):.3f} s" for n, t in times.items()), flush=True)
    med = {n: statistics.median(t) for n, t in times.items()}
    lines = [f"| {n} | {med[n]:.3f} | {med[n] / med['reference']:.2f} |" for n in VARIANTS]
    table = "\n".join(["| setting | median s/step | vs reference |", "|---|---|---|", *lines])
    print(table)
    if args.results:
        stamp = datetime.date.today().isoformat()
        text = (f"\n## Stage-2 step of the demo's tiny model: fast paths ({stamp}, {platform.processor() or platform.machine()}, "
                f"{args.threads} threads)\n\n`python benchmarks/train_step_options.py --demo {args.demo} --rounds {args.rounds} --steps {args.steps}`"
                f" ({args.rounds} interleaved rounds of {args.steps} steps per setting; batch 2, 8 x 16 x 16 latents):\n\n{table}\n"
                f"\nThe parameter update alone ({n_params} tensors, medians of 3 rounds of 30):\n\n{update_table}\n")
        with open(args.results, "a") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
