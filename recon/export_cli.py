"""``diffusion4d export``: a reconstruction (``diffusion4d reconstruct`` output) -> animated ``.glb`` + ``viewer.html``."""

from __future__ import annotations

import argparse
import json

COMMAND = "export"
HELP = "export a 4D Gaussian reconstruction as an animated glTF (.glb) mesh with an offline viewer.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from diffusion4d.recon.mesh_export import DEFAULT_GRID, DEFAULT_ISO, DEFAULT_VERTICES

    parser.add_argument("--input", required=True, help="output folder of `diffusion4d reconstruct` (gaussians_4d.json + .safetensors)")
    parser.add_argument("--output", required=True, help="the .glb file to write (viewer.html and <name>.json go next to it)")
    parser.add_argument("--vertices", type=int, default=DEFAULT_VERTICES, help=f"vertex budget of the mesh (default {DEFAULT_VERTICES})")
    parser.add_argument("--grid", type=int, default=DEFAULT_GRID, help=f"density-grid cells along the longest side (default {DEFAULT_GRID})")
    parser.add_argument("--iso", type=float, default=DEFAULT_ISO, help=f"marching-cubes level of the opacity-weighted kernel sum (default {DEFAULT_ISO})")
    parser.add_argument("--lighting", choices=["rig", "unlit"], default="rig",
                        help="rig: colours de-lit by the curation light rig (default); unlit: lit colours + KHR_materials_unlit")
    parser.add_argument("--colour", choices=["views", "kernel"], default="views",
                        help="views: baked from the reconstruction's re-rendered orbit (default); kernel: Gaussian colours near each vertex")
    parser.add_argument("--no-viewer", action="store_true", help="do not write viewer.html")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from diffusion4d.errors import UserError
    from diffusion4d.recon.mesh_export import export_glb

    out = Path(args.output)
    if out.suffix.lower() != ".glb":
        raise UserError(f"--output must end in .glb, got {out}")
    if out.is_dir():
        raise UserError(f"--output {out} is a folder; give a .glb file path")
    if args.vertices < 100:
        raise UserError(f"--vertices must be >= 100, got {args.vertices}")
    if not 16 <= args.grid <= 512:
        raise UserError(f"--grid must be in [16, 512], got {args.grid}")
    if not args.iso > 0:
        raise UserError(f"--iso must be > 0, got {args.iso}")
    if not Path(args.input).is_dir():
        raise UserError(f"--input {args.input} is not a folder")
    report = export_glb(args.input, out, vertices=args.vertices, grid=args.grid, iso=args.iso, lighting=args.lighting,
                        colour=args.colour, viewer=not args.no_viewer)
    keys = ("glb", "viewer", "vertices", "faces", "frames", "bytes")
    print(json.dumps({k: report.get(k) for k in keys} | {"seconds": round(report["seconds"]["total"], 1)}))
    return 0
