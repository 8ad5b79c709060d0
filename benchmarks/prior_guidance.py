"""What the 3D-aware prior term of Eq. 3 does, measured on a finished demo run.

For the demo's training captions (each with its asset's own motion magnitude and seed), generate
with three guidance settings through the real command, ``diffusion4d generate``:

* ``w2=0``: no prior term (w1 only);
* ``separate``: w2 against the frozen stage-1 prior stored in the checkpoint (the paper's recipe);
* ``self``: w2 against the 4D network itself at m = 0 (the variant);

and score each sample against the ground-truth dynamic orbit of its asset (PSNR / SSIM per frame,
generated frames resized to the renders' size, as ``diffusion4d evaluate`` does) and by the
held-out PSNR of a 4D reconstruction of the generated orbit (``diffusion4d reconstruct``, every
4th frame held out): a multi-view consistency proxy (an inconsistent orbit cannot be explained by
one 4D scene, so its unseen views reconstruct badly).

    python benchmarks/prior_guidance.py --demo demo_out [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List


SETTINGS = {  # name -> (w2, prior)
    "w2=0": (0.0, "auto"),
    "separate (stage-1 prior), w2=0.5": (0.5, "separate"),
    "self (4D net at m=0), w2=0.5": (0.5, "self"),
}


def _cli(argv: List[str]) -> None:
    from diffusion4d.app import main

    status = main(argv)
    if status != 0:
        raise SystemExit(f"'diffusion4d {' '.join(argv)}' exited with status {status}")


def score_against_ground_truth(sample_clip: Path, gt_clip: Path) -> Dict[str, float]:
    """Mean per-frame PSNR / SSIM of a generated clip against the renders of its asset."""
    import numpy as np

    from diffusion4d.io import frames_to_float, read_clip
    from diffusion4d.metrics import match_size, psnr_per_frame, ssim_per_frame, to_tensor

    pred, gt = read_clip(sample_clip), read_clip(gt_clip)
    n = min(len(pred.frames), len(gt.frames))
    idx = np.round(np.linspace(0, len(gt.frames) - 1, n)).astype(int)
    target = to_tensor(frames_to_float(gt.frames[idx]))
    p = match_size(to_tensor(frames_to_float(pred.frames[:n])), target)
    return {"psnr": float(psnr_per_frame(p, target).mean()), "ssim": float(ssim_per_frame(p, target).mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", required=True, help="a finished `diffusion4d demo` output folder")
    ap.add_argument("--workdir", default=None, help="where samples and reconstructions go (default <demo>/prior_guidance)")
    ap.add_argument("--recon-preset", default="demo")
    ap.add_argument("--results", default=None, help="append the table to this markdown file")
    args = ap.parse_args(argv)
    demo = Path(args.demo)
    state = json.loads((demo / "demo_state.json").read_text())["stages"]
    config = __import__("yaml").safe_load((demo / "demo_config.yaml").read_text())
    checkpoint = state["train"]["checkpoint"]
    samples = state["generate"]["samples"]
    w1 = float(config["guidance"][0])
    work = Path(args.workdir or demo / "prior_guidance")
    rows: Dict[str, List[dict]] = {name: [] for name in SETTINGS}
    start = time.perf_counter()
    for name, (w2, prior) in SETTINGS.items():
        tag = name.split(" ")[0].replace("=", "")
        for s in samples:
            out = work / tag
            _cli(["generate", "--model", checkpoint, "--prompt", s["caption"], "--motion", f"{s['motion']:.4f}",
                  "--steps", str(config["sampling_steps"]), "--seed", str(config["seed"]), "--guidance", str(w1), str(w2),
                  "--prior", prior, "--name", s["uid"], "--output", str(out)])  # fmt: skip
            score = score_against_ground_truth(out / s["uid"] / "dynamic", demo / "curated" / s["uid"] / "dynamic")
            recon = work / f"{tag}_recon" / s["uid"]
            _cli(["reconstruct", "--input", str(out / s["uid"] / "dynamic"), "--output", str(recon),
                  "--preset", args.recon_preset, "--holdout", "4"])  # fmt: skip
            metrics = json.loads((recon / "metrics.json").read_text())
            rows[name].append({"uid": s["uid"], **score, "recon_heldout_psnr": metrics.get("psnr_heldout")})
            print(name, rows[name][-1], flush=True)
    seconds = time.perf_counter() - start

    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else float("nan")

    lines = [
        f"## 3D-aware prior term, measured on the demo ({datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, CPU)",
        "",
        f"Command: `python benchmarks/prior_guidance.py --demo {demo}` ({seconds:.0f} s). Checkpoint `{checkpoint}` "
        f"(stage 2 started from the stage-1 prior); {len(samples)} training captions, each with its asset's motion "
        f"magnitude and seed {config['seed']}; w1 = {w1:g}, DDIM {config['sampling_steps']} steps; reconstruction preset "
        f"`{args.recon_preset}`, every 4th frame held out.",
        "",
        "| guidance | PSNR vs GT orbit (dB) | SSIM vs GT orbit | recon held-out PSNR (dB) | per asset (PSNR / SSIM / recon) |",
        "|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        per = "; ".join(f"{r['uid']}: {r['psnr']:.2f} / {r['ssim']:.3f} / {r['recon_heldout_psnr']:.2f}" for r in rs)
        lines.append(f"| {name} | {mean(r['psnr'] for r in rs):.2f} | {mean(r['ssim'] for r in rs):.3f} | "
                     f"{mean(r['recon_heldout_psnr'] for r in rs):.2f} | {per} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
