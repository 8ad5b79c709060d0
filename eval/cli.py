"""``diffusion4d evaluate`` and ``python eval/run_metrics.py``: one parser, one run function.

Example::

    python eval/run_metrics.py --gt data/curated --pred ours=out/recon --pred baseline=out/base \\
        --metrics clip_f,clip_o,psnr,ssim,lpips,fvd,time --weights-dir ~/weights --output eval_out
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

COMMAND = "evaluate"
HELP = "score generated / reconstructed orbits: CLIP-F, CLIP-O, CLIP-T, PSNR, SSIM, LPIPS, FVD, motion control, time"

_ALL = "clip_f,clip_o,clip_text,psnr,ssim,lpips,fvd,motion,time"


def _csv_list(text: str) -> List[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", action="append", default=[], metavar="NAME=DIR",
                        help="a method's clips: DIR/<uid>/dynamic (repeat for several methods)")
    parser.add_argument("--gt", metavar="DIR", help="ground-truth clips DIR/<uid>/dynamic (+ meta.json captions)")
    parser.add_argument("--reference", choices=("gt", "image", "text"), default="gt",
                        help="CLIP-F/CLIP-O reference: ground-truth view, the input image, or the prompt (default gt)")
    parser.add_argument("--metrics", default=_ALL, help=f"comma-separated subset of {_ALL} (default all)")
    parser.add_argument("--weights-dir", metavar="DIR",
                        help="folder with weight files (else $DIFFUSION4D_WEIGHTS, the torch hub cache, the HF cache)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--output", metavar="OUT", help="folder for the tables (required unless --no-write)")
    parser.add_argument("--format", default="md,csv,tex,json", help="comma-separated table formats: md,csv,tex,json")
    parser.add_argument("--strict", action="store_true", help="missing weights are an error (exit 2) instead of n/a")
    parser.add_argument("--clip-model", default=None, metavar="ID_OR_PATH",
                        help="transformers CLIP: hub id or folder (default openai/clip-vit-base-patch32)")
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default="alex", help="LPIPS backbone (default alex)")
    parser.add_argument("--fvd-frames", choices=("resample", "first"), default="resample",
                        help="16-frame FVD clip: uniform resampling of the orbit (default) or its first 16 frames")
    parser.add_argument("--fvd-resolution", type=int, default=224, help="I3D input size (224 = standard protocol)")
    parser.add_argument("--mode", default="dynamic", help="clip folder inside each <uid>/ (default dynamic)")
    parser.add_argument("--task", default="4D generation", help="table caption, e.g. 'Image-to-4D'")


def _parse_preds(items: List[str]) -> Dict[str, str]:
    from diffusion4d.errors import UserError

    preds: Dict[str, str] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--pred expects NAME=DIR, got {item!r}")
        if name in preds:
            raise UserError(f"--pred name {name!r} given twice")
        preds[name] = folder
    return preds


def run(args: argparse.Namespace) -> int:
    from diffusion4d.errors import UserError
    from diffusion4d.eval.api import evaluate
    from diffusion4d.eval.eval_config import EvalConfig
    from diffusion4d.eval.results import METRIC_INFO
    from diffusion4d.weights import DEFAULT_CLIP_MODEL

    if not args.output:
        raise UserError("--output OUT is required")
    from diffusion4d.io.paths import check_output_dir

    check_output_dir(args.output, "--output")  # an existing file: one line, before any metric runs
    cfg = EvalConfig(
        preds=_parse_preds(args.pred),
        gt=args.gt,
        output=args.output,
        reference=args.reference,
        metrics=_csv_list(args.metrics),
        weights_dir=args.weights_dir,
        device=args.device,
        formats=_csv_list(args.format),
        strict=args.strict,
        clip_model=args.clip_model or DEFAULT_CLIP_MODEL,
        lpips_net=args.lpips_net,
        fvd_frames=args.fvd_frames,
        fvd_resolution=args.fvd_resolution,
        mode=args.mode,
        task=args.task,
    )
    result = evaluate(cfg)
    for method in result.methods:
        cells = []
        for metric in result.metrics:
            s = result.summary[method].get(metric)
            cells.append(f"{METRIC_INFO[metric].label}=" + ("n/a" if s is None else f"{s.mean:.{METRIC_INFO[metric].decimals}f}"))
        print(f"{method}: " + "  ".join(cells))
    print(f"tables written to {args.output}")
    return 0


def main(argv: Optional[List[str]] = None, prog: str = "run_metrics.py") -> int:
    """Entry of ``python eval/run_metrics.py``: same options as ``diffusion4d evaluate``."""
    from diffusion4d.errors import UserError
    from diffusion4d.logging_utils import setup_logging

    from diffusion4d.command_line import OneLineParser

    parser = OneLineParser(prog=prog, description=HELP)
    add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else 0)
    try:
        return run(args)
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
