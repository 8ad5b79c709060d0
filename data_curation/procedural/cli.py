"""``diffusion4d assets``: write procedural animated glTF assets and their captions."""

from __future__ import annotations

import argparse
import logging

from diffusion4d.errors import UserError

from .assets import MOTION_FAMILIES
from .generator import CAPTIONS_FILE, METADATA_FILE, generate_assets

COMMAND = "assets"
HELP = "generate procedural animated .glb assets with captions (the default data source)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--output``, ``--count``, ``--seed``, ``--amplitudes`` and ``--motion-shifts``."""
    parser.add_argument("--output", required=True, metavar="DIR",
                        help=f"folder for <uid>.glb, {CAPTIONS_FILE} and {METADATA_FILE}")
    parser.add_argument("--count", type=int, default=12, metavar="N",
                        help=f"number of assets (families cycle; >= {len(MOTION_FAMILIES)} "
                             "covers all); default 12")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="non-negative seed; the same seed gives byte-identical files")
    parser.add_argument("--amplitudes", default="1", metavar="A,B,...",
                        help="motion-amplitude scales in (0, 1], 1 among them: each asset is also written at "
                             "the others as <uid>-a<scale>, same object and caption (default 1)")
    parser.add_argument("--motion-shifts", default="", metavar="S,T,...",
                        help="motion swaps: asset i is also written with the motion of asset (i + S) mod N as "
                             "<uid>-m<index>, its own object with that motion and caption (default none)")


def run(args: argparse.Namespace) -> int:
    """Generate the assets; raise :class:`UserError` on bad arguments; return 0."""
    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        raise UserError(f"--seed must be non-negative, got {args.seed}")
    try:
        amplitudes = [float(a) for a in str(getattr(args, "amplitudes", "1")).split(",") if a.strip()]
    except ValueError:
        raise UserError(f"--amplitudes must be comma-separated numbers, got {args.amplitudes!r}") from None
    try:
        shifts = [int(s) for s in str(getattr(args, "motion_shifts", "") or "").split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--motion-shifts must be comma-separated integers, got {args.motion_shifts!r}") from None
    try:
        assets = generate_assets(args.output, args.count, args.seed, amplitudes=amplitudes, motion_shifts=shifts)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    except OSError as exc:
        raise UserError(f"cannot write assets to {args.output}: {exc}") from exc
    families = sorted({a.family for a in assets})
    logger.info("%d assets (%s) in %s", len(assets), ", ".join(families), args.output)
    return 0
