"""Reconstruction quality on ground-truth orbits of procedural assets.

Generates procedural assets, curates them with the real curation stage (``diffusion4d curate``:
dynamic + static orbits, 24 frames, 128x128 by default, the paper's rules), reconstructs the
dynamic orbit of the first ``--count`` *accepted* assets with a preset holding out every 4th
frame, and appends the per-asset held-out PSNR/SSIM to benchmarks/RESULTS.md (section
"Reconstruction quality"). Rejected assets are listed with their reason; ``--include-rejected``
reconstructs them too (e.g. the fast-spinning cube the SSIM rule rejects).

    python benchmarks/recon_quality.py [--assets 8] [--count 3] [--size 128] [--preset default] [--jobs 1]
        [--real] [--uids a,b] [--compare "backend=torch ..."] [overrides...]

``--jobs N`` reconstructs N assets at once in separate processes (each with cores / N threads).
``--real`` also fetches the real third-party glTF assets (data_curation/real_assets.py), curates
them with ``diffusion4d curate --input`` and reports them next to the procedural ones
(``--assets 0 --real``: real ones only). ``--compare "OVERRIDES"`` reconstructs every chosen
asset twice in the same run, with the baseline overrides (e.g. ``backend=torch``: the
pure-torch rasteriser) and without them, and reports both side by side (wall and CPU seconds;
with ``--jobs 2`` the two run at the same time, one thread each, so they share the machine's
load alike).
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



def _reconstruct_one(job: tuple) -> dict:
    """Worker: ``(clip_dir, output_dir, preset, holdout, overrides, threads)`` -> metrics."""
    clip_dir, output_dir, preset, holdout, overrides, threads = job
    import time

    import torch

    from diffusion4d.recon import reconstruct

    torch.set_num_threads(threads)
    cpu0 = time.process_time()
    m = reconstruct(clip_dir, output_dir, preset=preset, holdout=holdout, overrides=overrides, restart=True)
    m["cpu_seconds"] = time.process_time() - cpu0
    return m


def _rigid(m: dict) -> str:
    """The fine stage's rigid-knot choice: the trial's verdict and its two held-out losses, or '-'."""
    trial = m.get("rigid_trial")
    if not trial:
        return "-"
    return f"{'yes' if trial['used'] else 'no'} ({trial['rigid']:.3f} vs {trial['local']:.3f})"


def _curate_real(work: Path, size: int, frames: int) -> tuple:
    """Fetch and curate the real assets; returns (curated folder or None, {name: reason} unavailable)."""
    from diffusion4d.data_curation.real_assets import RealAssetsUnavailable, asset_list, fetch
    from diffusion4d.app import main as cli

    try:
        got = fetch(work / "real_input")
    except RealAssetsUnavailable as err:
        return None, {a.name: str(err) for a in asset_list()}
    if not got["assets"]:
        return None, got["unavailable"]
    curated = work / "curated_real"
    rc = cli(["curate", "--input", str(work / "real_input"), "--output", str(curated), "--frames", str(frames),
              "--resolution", str(size), "--workers", "0"])  # fmt: skip
    if rc != 0:
        raise SystemExit(f"curation of the real assets failed with status {rc}")
    return curated, got["unavailable"]


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
    ap.add_argument("--real", action="store_true", help="also fetch, curate and reconstruct the real third-party glTF assets")
    ap.add_argument("--uids", default="", help="comma-separated asset uids to reconstruct (default: the first --count procedural + all real)")
    ap.add_argument("--compare", default="", help="baseline overrides: reconstruct every asset with and without them, side by side")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    from diffusion4d.data_curation.real_assets import asset_list
    from diffusion4d.app import main as cli
    from diffusion4d.io import read_manifest

    kinds = {a.name: a.kind for a in asset_list()}
    uids = [u for u in args.uids.split(",") if u]
    baseline = args.compare.split() if args.compare else None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        records = []
        if args.assets > 0:
            curated = work / "curated"
            rc = cli(["curate", "--procedural", str(args.assets), "--output", str(curated), "--frames", str(args.frames),
                      "--resolution", str(args.size), "--workers", "0"])  # fmt: skip
            if rc != 0:
                raise SystemExit(f"curation failed with status {rc}")
            procedural = sorted(read_manifest(curated / "manifest.jsonl"), key=lambda r: r["uid"])
            records += [dict(r, source="procedural", root=curated) for r in procedural]
        unavailable = {}
        if args.real:
            curated_real, unavailable = _curate_real(work, args.size, args.frames)
            if curated_real is not None:
                real = sorted(read_manifest(curated_real / "manifest.jsonl"), key=lambda r: r["uid"])
                records += [dict(r, source="real", caption=f"{kinds.get(r['uid'], '?')} animation", root=curated_real) for r in real]
        if uids:
            records = [r for r in records if r["uid"] in uids]
        eligible = [r for r in records if args.include_rejected or r["status"] == "accepted"]
        chosen = [r for r in eligible if r["source"] == "procedural"][: args.count] + [r for r in eligible if r["source"] == "real"]
        skipped = [r for r in records if r["status"] != "accepted"]
        threads = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
        variants = [("baseline", list(baseline) + list(args.overrides)), ("new", list(args.overrides))] if baseline else [("", list(args.overrides))]
        jobs, keys = [], []
        for r in chosen:
            for label, ov in variants:
                out = work / "out" / (f"{r['uid']}-{label}" if label else r["uid"])
                jobs.append((r["root"] / r["uid"] / "dynamic", out, args.preset, args.holdout, ov, threads))
                keys.append((r, label))
        if args.jobs > 1:
            ctx = __import__("multiprocessing").get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
                results = list(pool.map(_reconstruct_one, jobs))
        else:
            results = [_reconstruct_one(j) for j in jobs]
        rows = [(r, label, m) for (r, label), m in zip(keys, results)]
        for rec, label, m in rows:
            print(json.dumps({"uid": rec["uid"], "variant": label, "source": rec["source"], "caption": rec.get("caption"),
                              "status": rec["status"], "psnr_heldout": m["psnr_heldout"], "psnr_train": m["psnr_train"],
                              "ssim_heldout": m["ssim_heldout"], "seconds": m["timings"]["total"],
                              "cpu_seconds": m["cpu_seconds"], "backend": m["backend"], "rigid_trial": m.get("rigid_trial"), "timings": m["timings"]}))  # fmt: skip
    title = f"preset `{args.preset}` {' '.join(args.overrides)}"
    if baseline:
        title += f", baseline = same + `{args.compare}`"
    lines = [
        f"\n## Reconstruction quality ({datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores, {title}, "
        f"{args.size}x{args.size}, {args.frames} frames, every {args.holdout}th held out)\n",
        f"Command: `python benchmarks/recon_quality.py {' '.join(sys.argv[1:])}`\n",
        "| asset | source | caption | curation | variant | backend | rigid knots | held-out PSNR (dB) | train PSNR (dB) | held-out SSIM | Gaussians | seconds | CPU seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec, label, m in rows:
        lines.append(f"| {rec['uid']} | {rec['source']} | {rec.get('caption', '')} | {rec['status']} | {label or '-'} | {m['backend']} "
                     f"| {_rigid(m)} | {m['psnr_heldout']:.2f} | {m['psnr_train']:.2f} | {m['ssim_heldout']:.3f} | {m['num_gaussians']} "
                     f"| {m['timings']['total']:.0f} | {m['cpu_seconds']:.0f} |")  # fmt: skip
    if skipped and not args.include_rejected:
        lines.append("\nRejected by curation (not reconstructed): " + "; ".join(f"{r['uid']} ({r.get('reason', r['status'])})" for r in skipped))
    for name, why in unavailable.items():
        lines.append(f"\nReal asset {name} unavailable: {why}")
    for label, _ in variants:
        sel = [m for _, lab, m in rows if lab == label]
        acc = [m["psnr_heldout"] for r, lab, m in rows if lab == label and r["status"] == "accepted"]
        if not sel:
            continue
        mean = float(np.mean([m["psnr_heldout"] for m in sel]))
        wall = float(np.sum([m["timings"]["total"] for m in sel]))
        cpu = float(np.sum([m["cpu_seconds"] for m in sel]))
        name = f"{label}: " if label else ""
        lines.append(f"\n{name}mean held-out PSNR over the {len(sel)} reconstructed assets: {mean:.2f} dB (target >= 28 dB); "
                     f"over the {len(acc)} accepted by curation: {float(np.mean(acc)) if acc else float('nan'):.2f} dB; "
                     f"wall {wall:.0f} s, CPU {cpu:.0f} s in all")  # fmt: skip
        print(lines[-1].strip())
    if baseline and rows:
        b = {r["uid"]: m for r, lab, m in rows if lab == "baseline"}
        n = {r["uid"]: m for r, lab, m in rows if lab == "new"}
        common = sorted(set(b) & set(n))
        if common:
            sw = sum(b[u]["timings"]["total"] for u in common) / max(1e-9, sum(n[u]["timings"]["total"] for u in common))
            sc = sum(b[u]["cpu_seconds"] for u in common) / max(1e-9, sum(n[u]["cpu_seconds"] for u in common))
            dp = float(np.mean([n[u]["psnr_heldout"] - b[u]["psnr_heldout"] for u in common]))
            lines.append(f"\nSpeed-up new vs baseline: {sw:.1f}x wall, {sc:.1f}x CPU; held-out PSNR change {dp:+.2f} dB (mean over {len(common)})")
            print(lines[-1].strip())
    with open(args.results, "a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
