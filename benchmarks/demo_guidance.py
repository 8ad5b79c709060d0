"""Tune the text guidance weight w1 of the demo's model on a finished demo run.

For the demo's training captions (each with its asset's own motion magnitude and the demo's seed),
generate with several w1 values (w2 and the prior as the demo uses them) through the real
``diffusion4d generate``, then score with ``diffusion4d evaluate`` against the curated renders:
silhouette IoU with the caption's own asset and the colour match over all curated assets.

Validation split: ``--split heldout`` uses the demo captions of a second seed (same captions, new
noise) so the weight is not chosen on the very samples the report shows; ``--split demo`` reuses
the demo's seed.

    python benchmarks/demo_guidance.py --demo demo_out --w1 2,3,5,7.5 [--split heldout] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import time
from pathlib import Path
from typing import List


def _cli(argv: List[str]) -> None:
    from diffusion4d.app import main

    status = main(argv)
    if status != 0:
        raise SystemExit(f"'diffusion4d {' '.join(argv)}' exited with status {status}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", required=True, help="a finished demo output folder")
    p.add_argument("--w1", default="2,3,5,7.5", help="comma list of w1 values")
    p.add_argument("--split", choices=("heldout", "demo"), default="heldout", help="seed: a new one (heldout) or the demo's")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the demo's)")
    p.add_argument("--scheduler", choices=("ddim", "dpm"), default="ddim", help="sampler (the demo uses ddim)")
    p.add_argument("--w2", type=float, default=None, help="prior guidance weight (default: the demo's)")
    p.add_argument("--results", default=None, help="append a section to this RESULTS.md")
    args = p.parse_args()

    from diffusion4d.app.demo import DemoRun, _accepted, _latest_checkpoint, load_demo_config

    demo = Path(args.demo)
    cfg = load_demo_config(str(demo / "demo_config.yaml"), False, [])
    run = DemoRun(demo, cfg, "cpu", force=False)
    model = str(_latest_checkpoint(run))
    captions = _accepted(run)[: cfg.prompts]
    seed = cfg.seed + (1000 if args.split == "heldout" else 0)
    steps = args.steps or cfg.sampling_steps
    w2 = cfg.guidance[1] if args.w2 is None else args.w2
    work = demo / "guidance_study" / f"{args.scheduler}{steps}_w2_{w2:g}_{args.split}"
    rows = []
    for w1 in [float(x) for x in args.w1.split(",")]:
        out = work / f"w1_{w1:g}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        for rec in captions:
            _cli(["generate", "--model", model, "--prompt", rec["caption"], "--motion", f"{rec['motion_magnitude']:.4f}",
                  "--name", rec["uid"], "--output", str(out / "samples"), "--steps", str(steps), "--scheduler", args.scheduler, "--seed", str(seed),
                  "--guidance", str(w1), str(w2), "--device", "cpu"])  # fmt: skip
        _cli(["evaluate", "--pred", f"w1={out / 'samples'}", "--gt", str(run.curated_dir), "--metrics", "psnr,iou,colour",
              "--output", str(out / "eval"), "--format", "json"])  # fmt: skip
        summary = json.loads((out / "eval" / "metrics.json").read_text())["summary"]["w1"]
        row = {"w1": w1, "iou": summary["iou"]["mean"], "colour": summary["colour"]["mean"] if summary.get("colour") else None,
               "psnr": summary["psnr"]["mean"], "seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.results:
        lines = [
            "",
            f"### Demo model: text guidance w1 ({datetime.date.today().isoformat()}, {platform.node()}, CPU)",
            "",
            f"Command: `python benchmarks/demo_guidance.py --demo {args.demo} --w1 {args.w1} --split {args.split} --steps {steps} --scheduler {args.scheduler} --w2 {w2:g}`; "
            f"{len(captions)} training captions, seed {seed}, w2 {w2:g}, {steps} {args.scheduler.upper()} steps.",
            "",
            "| w1 | silhouette IoU (own asset) | colour match | PSNR vs own asset |",
            "|---|---|---|---|",
        ]
        for r in rows:
            colour = "n/a" if r["colour"] is None else f"{r['colour']:.2f}"
            lines.append(f"| {r['w1']:g} | {r['iou']:.3f} | {colour} | {r['psnr']:.2f} |")
        with open(args.results, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
