"""Reconstruction quality on ground-truth orbits of procedural assets.

Renders each asset's dynamic + static orbit (24 frames, 128x128 by default) with the curation
renderer, reconstructs with a preset holding out every 4th frame, and appends the per-asset
held-out PSNR/SSIM to benchmarks/RESULTS.md (section "Reconstruction").

    python benchmarks/recon_quality.py [--count 3] [--size 128] [--preset default] [overrides...]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--holdout", type=int, default=4)
    ap.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from data_curation import render_clip
    from data_curation.procedural import generate_assets
    from diffusion4d.cameras import orbit_trajectory
    from diffusion4d.io import write_clip
    from recon import reconstruct

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for asset in generate_assets(tmp / "glb", args.count, seed=0):
            for mode in ("dynamic", "static"):
                cams = orbit_trajectory(mode, args.frames, width=args.size, height=args.size)
                write_clip(tmp / asset.uid / mode, render_clip(asset.path, cams), cams)
            m = reconstruct(tmp / asset.uid / "dynamic", tmp / "out" / asset.uid, preset=args.preset,
                            holdout=args.holdout, overrides=args.overrides)  # fmt: skip
            rows.append((asset.uid, asset.family, m))
            print(json.dumps({"uid": asset.uid, "family": asset.family, "psnr_heldout": m["psnr_heldout"],
                              "ssim_heldout": m["ssim_heldout"], "seconds": m["timings"]["total"]}))  # fmt: skip
    mean = float(np.mean([m["psnr_heldout"] for _, _, m in rows]))
    lines = [
        f"\n## Reconstruction ({datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, preset `{args.preset}` "
        f"{' '.join(args.overrides)}, {args.size}x{args.size}, {args.frames} frames, every {args.holdout}th held out)\n",
        "| asset | family | held-out PSNR (dB) | held-out SSIM | Gaussians | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for uid, fam, m in rows:
        lines.append(f"| {uid} | {fam} | {m['psnr_heldout']:.2f} | {m['ssim_heldout']:.3f} | {m['num_gaussians']} | {m['timings']['total']:.0f} |")
    lines.append(f"\nMean held-out PSNR: {mean:.2f} dB (target >= 28 dB)")
    print(f"mean held-out PSNR {mean:.2f} dB")
    with open(args.results, "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
