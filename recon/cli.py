"""``diffusion4d reconstruct``: a clip folder -> 4D Gaussians, exports and metrics."""

from __future__ import annotations

import argparse
import json

COMMAND = "reconstruct"
HELP = "fit 4D Gaussians (static coarse stage + deformation) to an orbital video clip"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="clip folder (<uid>/dynamic with cameras.json and frames)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--static", default=None, help="static orbit clip (default: sibling 'static' folder if present)")
    parser.add_argument("--preset", default="default", help="configs/recon preset name or YAML path (test, demo, default, paper)")
    parser.add_argument("--backend", default="auto", choices=["auto", "gsplat", "torch", "cpu"], help="rasterizer backend (cpu: the compiled CPU kernel)")
    parser.add_argument("--mode", default="orbit", choices=["orbit", "freeze_time"], help="Diffusion4D orbit fit or 4Real freeze-time fit")
    parser.add_argument("--holdout", type=int, default=0, help="hold out every K-th frame for evaluation (0: none)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--restart", action="store_true",
        help="refit every stage, ignoring the finished coarse stage an earlier run saved in --output "
        "(by default it is reused when made from the same input and config)",
    )  # fmt: skip
    parser.add_argument(
        "--export", default=None, choices=["glb"],
        help="after a successful fit, also export OUTPUT/model.glb (animated mesh) and OUTPUT/viewer.html (`diffusion4d export`)",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="config overrides key.sub=value (e.g. coarse.iterations=200)")


def run(args: argparse.Namespace) -> int:
    from diffusion4d.recon.pipeline import reconstruct

    metrics = reconstruct(
        args.input,
        args.output,
        static_dir=args.static,
        preset=args.preset,
        backend=args.backend,
        mode=args.mode,
        holdout=args.holdout,
        device=args.device,
        overrides=args.overrides,
        restart=args.restart,
    )
    if getattr(args, "export", None) == "glb":
        from pathlib import Path

        from diffusion4d.recon.mesh_export import export_glb

        report = export_glb(args.output, Path(args.output) / "model.glb", viewer=True)
        metrics["export"] = {k: report.get(k) for k in ("glb", "viewer", "vertices", "bytes")}
    keys = ("psnr_heldout", "ssim_heldout", "psnr_train", "num_gaussians")
    print(json.dumps({k: metrics[k] for k in keys} | {"seconds": round(metrics["timings"]["total"], 1), "output": args.output}
                     | ({"export": metrics["export"]} if "export" in metrics else {})))
    return 0
