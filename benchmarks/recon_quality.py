"""Reconstruction quality on ground-truth orbits of procedural assets.

Generates procedural assets, curates them with the real curation stage (``diffusion4d curate``:
dynamic + static orbits, 24 frames, 128x128 by default, the paper's rules), reconstructs the
dynamic orbit of the first ``--count`` *accepted* assets with a preset holding out every 4th
frame, and appends the per-asset held-out PSNR/SSIM to benchmarks/RESULTS.md (section
"Reconstruction quality"). Rejected assets are listed with their reason; ``--include-rejected``
reconstructs them too (e.g. the fast-spinning cube the SSIM rule rejects).

    python benchmarks/recon_quality.py [--assets 8] [--count 3] [--size 128] [--preset default] [--jobs 1] [overrides...]

``--jobs N`` reconstructs N assets at once in separate processes (each with cores / N threads).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

# this script is named recon.py (and sits next to one): keep its folder off sys.path so
# ``import recon`` finds the package, not the script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def _reconstruct_one(job: tuple) -> dict:
    """Worker: ``(clip_dir, output_dir, preset, holdout, overrides, threads)`` -> metrics."""
    clip_dir, output_dir, preset, holdout, overrides, threads = job
    import torch

    from recon import reconstruct

    torch.set_num_threads(threads)
    return reconstruct(clip_dir, output_dir, preset=preset, holdout=holdout, overrides=overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=8, help="procedural assets generated and curated")
    ap.add_argument("--count", type=int, default=3, help="assets reconstructed")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--holdout", type=int, default=4)
    ap.add_argument("--include-rejected", action="store_true", help="also reconstruct assets the curation rejected")
    ap.add_argument("--workdir", default=None, help="keep the curated clips and outputs here (default: a temporary folder)")
    ap.add_argument("--jobs", type=int, default=1, help="assets reconstructed at once (separate processes)")
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from diffusion4d.cli import main as cli
    from diffusion4d.io import read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        curated = work / "curated"
        rc = cli(["curate", "--procedural", str(args.assets), "--output", str(curated), "--frames", str(args.frames),
                  "--resolution", str(args.size), "--workers", "0"])  # fmt: skip
        if rc != 0:
            raise SystemExit(f"curation failed with status {rc}")
        records = sorted(read_manifest(curated / "manifest.jsonl"), key=lambda r: r["uid"])
        chosen = [r for r in records if args.include_rejected or r["status"] == "accepted"][: args.count]
        skipped = [r for r in records if r["status"] != "accepted"]
        threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
        jobs = [(curated / r["uid"] / "dynamic", work / "out" / r["uid"], args.preset, args.holdout, args.overrides, threads) for r in chosen]
        if args.jobs > 1:
            ctx = __import__("multiprocessing").get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
                results = list(pool.map(_reconstruct_one, jobs))
        else:
            results = [_reconstruct_one(j) for j in jobs]
        rows = list(zip(chosen, results))
        for rec, m in rows:
            print(json.dumps({"uid": rec["uid"], "caption": rec.get("caption"), "status": rec["status"],
                              "psnr_heldout": m["psnr_heldout"], "psnr_train": m["psnr_train"],
                              "ssim_heldout": m["ssim_heldout"], "seconds": m["timings"]["total"]}))  # fmt: skip
    every = [m["psnr_heldout"] for _, m in rows]
    accepted = [m["psnr_heldout"] for r, m in rows if r["status"] == "accepted"]
    mean = float(np.mean(every)) if every else float("nan")
    mean_accepted = float(np.mean(accepted)) if accepted else float("nan")
    lines = [
        f"\n## Reconstruction quality ({datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, preset `{args.preset}` "
        f"{' '.join(args.overrides)}, {args.size}x{args.size}, {args.frames} frames, every {args.holdout}th held out)\n",
        f"Command: `python benchmarks/recon_quality.py {' '.join(sys.argv[1:])}`\n",
        "| asset | caption | curation | held-out PSNR (dB) | train PSNR (dB) | held-out SSIM | Gaussians | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rec, m in rows:
        lines.append(f"| {rec['uid']} | {rec.get('caption', '')} | {rec['status']} | {m['psnr_heldout']:.2f} | {m['psnr_train']:.2f} "
                     f"| {m['ssim_heldout']:.3f} | {m['num_gaussians']} | {m['timings']['total']:.0f} |")  # fmt: skip
    if skipped and not args.include_rejected:
        lines.append("\nRejected by curation (not reconstructed): " + "; ".join(f"{r['uid']} ({r.get('reason', r['status'])})" for r in skipped))
    lines.append(f"\nMean held-out PSNR over the {len(every)} reconstructed assets: {mean:.2f} dB (target >= 28 dB); "
                 f"over the {len(accepted)} accepted by curation: {mean_accepted:.2f} dB")
    print(f"mean held-out PSNR {mean:.2f} dB ({len(every)} assets), accepted assets {mean_accepted:.2f} dB")
    with open(args.results, "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
