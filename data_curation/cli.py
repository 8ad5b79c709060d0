"""``diffusion4d curate``: animated assets -> orbital 4D dataset (see docs/curation.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

COMMAND = "curate"
HELP = "render animated assets to dynamic/static/front orbits, apply the curation rules, write the manifest"

logger = logging.getLogger(__name__)

# CLI flag -> config key (flags left unset do not override the YAML/defaults)
_FLAG_TO_KEY = {
    "renderer": "render.renderer", "modes": "render.modes", "frames": "render.frames", "resolution": "render.resolution",
    "elevation": "render.elevation", "radius": "render.radius", "fov": "render.fov",
    "orbits_per_asset": "render.orbits_per_asset", "azimuth_aug": "render.azimuth_aug", "elevation_aug": "render.elevation_aug",
    "animation": "render.animation", "normalize": "render.normalize", "blender": "render.blender",
    "blender_engine": "render.blender_engine", "seed": "seed", "workers": "workers", "executor": "executor",
    "ray_address": "ray_address", "shard": "shard", "timeout": "timeout", "retry_failed": "retry_failed", "limit": "limit",
    "s_high": "rules.s_high", "s_low": "rules.s_low", "border_px": "rules.border_px", "min_coverage": "rules.min_coverage",
    "min_motion": "rules.min_motion", "max_motion": "rules.max_motion", "max_extent": "render.max_extent",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source (one of)")
    src.add_argument("--input", nargs="+", metavar="PATH", help=".glb/.gltf files or folders (other formats with --renderer blender)")
    src.add_argument("--objaverse-uids", metavar="FILE", help="file with one Objaverse uid per line")
    src.add_argument("--objaverse-path", metavar="DIR", help="local Objaverse store (objaverse._VERSIONED_PATH)")
    src.add_argument("--procedural", type=int, metavar="N", help="generate N procedural assets")
    src.add_argument("--captions", metavar="CSV", help="Cap3D-style captions (uid,caption) overriding the source's")
    parser.add_argument("--output", required=True, help="output root: <uid>/<mode>/, meta.json, manifest.jsonl")
    parser.add_argument("--config", help="a shipped preset name (default, laptop, objaverse_cluster) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides key.sub=value, as every command takes them (e.g. rules.s_high=0.97)")
    parser.add_argument("--set", dest="set_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="the same as a positional KEY=VALUE (kept for older scripts; repeatable)")
    r = parser.add_argument_group("rendering")
    r.add_argument("--renderer", choices=["fast", "blender"])
    r.add_argument("--blender", metavar="PATH", help="Blender executable (or a folder holding one)")
    r.add_argument("--blender-engine", choices=["workbench", "cycles", "eevee"])
    r.add_argument("--modes", help="comma-separated: dynamic,static,front,four_view")
    r.add_argument("--frames", type=int, help="frames per clip (24)")
    r.add_argument("--resolution", type=int, help="image side in pixels (256)")
    r.add_argument("--elevation", type=float, help="camera elevation in degrees (0)")
    r.add_argument("--radius", type=float, help="camera distance (2.0)")
    r.add_argument("--fov", type=float, help="field of view in degrees (49.13)")
    r.add_argument("--orbits-per-asset", type=int, help="orbits per asset (2: front start + random start)")
    r.add_argument("--azimuth-aug", action="store_true", default=None, help="random start azimuth for orbit 0 too")
    r.add_argument("--elevation-aug", action="store_true", default=None, help="random elevation (5-30 deg) per orbit")
    r.add_argument("--animation", help="longest | first | <index> | <name>")
    r.add_argument("--normalize", choices=["t0", "all"], help="unit-box normalisation by bounds at t0 or over all times")
    r.add_argument("--max-extent", type=float, help="bounding-box sides above this fail as absurd_size")
    ru = parser.add_argument_group("rules")
    ru.add_argument("--s-high", type=float, help="SSIM rule upper threshold (0.95)")
    ru.add_argument("--s-low", type=float, help="SSIM rule lower threshold (0.4)")
    ru.add_argument("--border-px", type=int, help="out-of-frame border width (1)")
    ru.add_argument("--min-coverage", type=float, help="empty-render coverage threshold (0)")
    ru.add_argument("--min-motion", type=float, help="minimum motion magnitude (0)")
    ru.add_argument("--max-motion", type=float, help="maximum motion magnitude (1)")
    ex = parser.add_argument_group("execution")
    ex.add_argument("--seed", type=int)
    ex.add_argument("--workers", type=int, help="worker processes (0: in process)")
    ex.add_argument("--executor", choices=["local", "ray"])
    ex.add_argument("--ray-address", help="Ray cluster address (default: a local instance)")
    ex.add_argument("--shard", help="i/N: curate only the uids of shard i of N")
    ex.add_argument("--timeout", type=float, help="seconds per asset before its worker is killed")
    ex.add_argument("--retry-failed", action="store_true", default=None, help="rerun assets recorded as failed")
    ex.add_argument("--limit", type=int, help="curate at most this many assets")
    ex.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                    help="when another curate run holds the output's lock, wait this long before giving up "
                         "(default 10; negative: wait until it is free)")


def build_config(args: argparse.Namespace):
    from diffusion4d.config import ConfigError, load_config
    from diffusion4d.errors import UserError

    from .curate_config import CurateConfig

    overrides = [f"output={args.output}"]
    for flag, key in _FLAG_TO_KEY.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={'[' + value + ']' if flag == 'modes' else value}")
    overrides += list(getattr(args, "set_overrides", [])) + list(args.overrides)
    try:
        from diffusion4d.presets import resolve_preset

        preset = resolve_preset("curation", args.config) if args.config else None
        return load_config(CurateConfig, preset, overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from diffusion4d.errors import UserError

    from . import sources
    from .runner import check_render_settings, curation_lock, run_curation

    from diffusion4d.io.paths import check_output_dir

    sources_given = [s for s in ("input", "objaverse_uids", "procedural") if getattr(args, s) is not None]
    if len(sources_given) != 1:
        raise UserError("give exactly one source: --input, --objaverse-uids or --procedural")
    if args.procedural is not None and args.procedural < 1:
        raise UserError("--procedural needs N >= 1")
    check_output_dir(args.output, "--output")  # before anything is written (an existing file: one line)
    cfg = build_config(args)
    captions = sources.read_captions_csv(args.captions) if args.captions else None  # validated before any asset is written
    if cfg.render.renderer == "blender":
        from .render.blender import find_blender

        find_blender(cfg.render.blender)  # fail early, one line
    if args.wait is not None and args.wait != args.wait:
        raise UserError("--wait must be a number of seconds")
    # one writer per output (and shard): held from before the source writes anything until the end
    with curation_lock(cfg.output, cfg.shard, args.wait):
        check_render_settings(cfg, Path(cfg.output))  # before the procedural source writes its assets
        if args.input is not None:
            tasks = sources.local_tasks(args.input, cfg.render.renderer)
        elif args.objaverse_uids is not None:
            tasks = sources.objaverse_tasks(sources.read_uid_list(args.objaverse_uids), args.objaverse_path)
        else:
            tasks = _procedural_tasks(args.procedural, Path(cfg.output), cfg.seed)
        if captions is not None:
            sources.apply_captions(tasks, captions)
        tasks = sources.select_shard(tasks, cfg.shard)
        if cfg.limit > 0:
            tasks = tasks[: cfg.limit]
        if not tasks:
            raise UserError("no assets to curate (empty source or shard)")
        summary = run_curation(cfg, tasks, locked=True)
    print(summary.line())
    return 0


def _procedural_tasks(count: int, output: Path, seed: int):
    """The procedural source writes into ``OUT/_procedural_assets``, shared by the shards of one
    output: generated under its own lock."""
    from filelock import FileLock, Timeout

    from diffusion4d.errors import UserError

    from . import sources

    lock = FileLock(str(output / ".procedural.lock"))
    try:
        with lock.acquire(timeout=600):
            return sources.procedural_tasks(count, output / "_procedural_assets", seed)
    except Timeout:
        raise UserError(f"another curate run has been generating procedural assets in {output} for 10 minutes "
                        f"(lock {output / '.procedural.lock'})") from None
