"""Rendering throughput: fast renderer (moderngl/EGL) vs Blender Cycles (16 spp) and Workbench.

    python benchmarks/render.py [--assets 2] [--frames 24] [--resolution 256]

Renders the same procedural assets (one dynamic orbit each) with every backend, prints frames/s
(wall time of ``render_clip``, asset loading and Blender start-up included: the per-clip cost a
curation run pays) and the estimated time for the 11k curated Objaverse-1.0 assets x
(2 dynamic + 2 static + 1 front) x 24 frames, then appends a dated section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ASSETS_11K = 11_000
FRAMES_PER_ASSET = 5 * 24  # 2 dynamic + 2 static + front, 24 frames each


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--assets", type=int, default=2)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--no-write", action="store_true", help="print only, do not append to RESULTS.md")
    args = p.parse_args(argv)

    from diffusion4d.data_curation import render_clip
    from diffusion4d.data_curation.procedural import generate_assets
    from diffusion4d.data_curation.render.fast import gl_context
    from diffusion4d.cameras import orbit_trajectory

    tmp = Path(tempfile.mkdtemp(prefix="d4d_bench_"))
    assets = generate_assets(tmp, max(args.assets, 1) * 7, seed=0, show_progress=False)
    assets = [a for a in assets if a.family != "static"][: args.assets]
    cams = orbit_trajectory("dynamic", args.frames, width=args.resolution, height=args.resolution, elevation=15.0)
    renderer_info = gl_context().info.get("GL_RENDERER", "?")
    backends = [("fast", {}, f"moderngl EGL ({renderer_info}), MSAA 4x")]
    if shutil.which("blender"):
        backends += [("blender", {"engine": "cycles", "samples": 16}, "Blender Cycles 16 spp (CPU)"),
                     ("blender", {"engine": "workbench"}, "Blender Workbench")]
    render_clip(assets[0].path, orbit_trajectory("front", 1, width=32, height=32))  # warm up the GL context
    rows = []
    for name, opts, label in backends:
        start = time.perf_counter()
        for a in assets:
            render_clip(a.path, cams, renderer=name, **opts)
        seconds = time.perf_counter() - start
        n = len(assets) * args.frames
        fps = n / seconds
        est_h = ASSETS_11K * FRAMES_PER_ASSET / fps / 3600
        rows.append((label, n, seconds, fps, est_h))
        print(f"{label:55s} {n:4d} frames {seconds:7.1f} s {fps:7.2f} frames/s  11k Objaverse: {est_h:8.1f} h on this machine", flush=True)
    fast_fps = rows[0][3]
    ratios = [f"fast / {r[0]}: {fast_fps / r[3]:.1f}x" for r in rows[1:]]
    if ratios:
        print("; ".join(ratios))
    shutil.rmtree(tmp, ignore_errors=True)
    if args.no_write:
        return 0
    lines = [f"\n## Rendering ({datetime.date.today().isoformat()})\n",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"command: `python benchmarks/render.py --assets {args.assets} --frames {args.frames} --resolution {args.resolution}`.\n",
             f"{len(assets)} procedural assets ({', '.join(a.family for a in assets)}), one {args.frames}-frame dynamic orbit each at "
             f"{args.resolution}x{args.resolution}; wall time of `render_clip` (asset load + Blender start-up included).\n",
             "Estimate: 11k curated Objaverse-1.0 assets x (2 dynamic + 2 static + 1 front) x 24 frames = "
             f"{ASSETS_11K * FRAMES_PER_ASSET / 1e6:.2f} M frames.\n",
             "| backend | frames | seconds | frames/s | 11k assets (hours, this machine) |", "|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.2f} | {r[4]:.1f} |" for r in rows]
    if ratios:
        lines.append("\n" + "; ".join(ratios) + ".")
    results = Path(__file__).with_name("RESULTS.md")
    with open(results, "a") as fh:
        if results.stat().st_size == 0 if results.exists() else True:
            fh.write("# Benchmark results\n")
        fh.write("\n".join(lines) + "\n")
    print(f"appended to {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
