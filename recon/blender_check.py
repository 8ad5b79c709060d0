"""Does Blender import an exported ``.glb`` with its animation? (issue 18's bar for the export)

:func:`check_in_blender` runs a real Blender in background mode
(``blender -b --factory-startup --python <script> -- <glb> ...``, the script written to a temporary
folder), imports the file with Blender's own glTF importer (``bpy.ops.import_scene.gltf``) into an
empty scene and prints one JSON line that is returned as a dict:

* ``blender_version``, ``objects`` / ``mesh_objects`` (what the import created), ``vertices`` /
  ``faces`` (all imported meshes), ``materials``, ``color_attributes`` (vertex colours);
* ``shape_keys``: the morph targets as Blender shape keys (the ``Basis`` key not counted);
  ``shape_key_animation``: the shape keys carry an action (glTF ``weights`` channel),
  ``object_animation``: an object carries an action (glTF ``translation`` / ``rotation`` channels),
  with their F-curve counts; ``animated``: either;
* ``frame_range`` (over all actions, Blender frames) and ``fps`` (the scene's; the importer maps
  key seconds to frames at this rate);
* at two frames (``frames``; default the first frame of the range and its middle), after
  ``scene.frame_set``: the shape-key values (``shape_key_values``, of the first mesh with keys) and
  the world-space centroid and bounds (min, max) of the evaluated meshes (``centroids``,
  ``bounds``; Blender's world is Z up, front -Y, like ours); ``max_displacement``: the largest
  distance a vertex moved between the two frames (world units), so a check sees the animation
  change the geometry, not only the weights.

Blender comes from ``blender`` on ``PATH`` (or ``blender=``, an executable or a folder holding
one); without one :func:`check_in_blender` returns ``None``. Debian's Blender 3.4 importer uses
``numpy.bool``, which numpy 1.24 removed; the script puts the alias back inside Blender (as the
curation's Blender render script does). No import from another stage (the stages are independent).

Command line: ``python -m diffusion4d.recon.blender_check model.glb [frame_a frame_b]`` prints the JSON
(exit status 2 without Blender, 1 when the import fails).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

from diffusion4d.blender import blender_executable

MARKER = "DIFFUSION4D_BLENDER_CHECK "

# Runs INSIDE Blender: no imports from our packages (Blender's Python does not have them).
_SCRIPT = r'''
import json, sys, traceback

def main():
    try:
        import numpy
        if not hasattr(numpy, "bool"):  # Debian's Blender 3.4 glTF importer uses numpy.bool
            numpy.bool = bool
    except ImportError:
        numpy = None
    import bpy

    args = sys.argv[sys.argv.index("--") + 1:]
    path, frames = args[0], [float(x) for x in args[1:]]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    before = set(o.name for o in bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=path)
    objs = [o for o in bpy.data.objects if o.name not in before]
    meshes = [o for o in objs if o.type == "MESH"]
    scene = bpy.context.scene
    lo = hi = None
    for a in bpy.data.actions:
        a0, a1 = (float(x) for x in a.frame_range)
        lo, hi = (a0, a1) if lo is None else (min(lo, a0), max(hi, a1))
    if not frames:
        frames = [lo, 0.5 * (lo + hi)] if lo is not None else [float(scene.frame_current)] * 2

    def action_of(idb):
        ad = getattr(idb, "animation_data", None)
        return ad.action if ad is not None and ad.action is not None else None

    per_mesh, keyed = [], None
    for o in meshes:
        sk = o.data.shape_keys
        blocks = [k for k in sk.key_blocks if k != sk.reference_key] if sk is not None else []
        ska, oba = action_of(sk) if sk is not None else None, action_of(o)
        per_mesh.append({"name": o.name, "vertices": len(o.data.vertices), "faces": len(o.data.polygons),
                         "shape_keys": len(blocks), "shape_key_action": ska.name if ska else None,
                         "shape_key_fcurves": len(ska.fcurves) if ska else 0,
                         "object_action": oba.name if oba else None,
                         "object_channels": sorted(set(fc.data_path for fc in oba.fcurves)) if oba else []})
        if keyed is None and blocks:
            keyed = (o, blocks)

    def sample(frame):
        scene.frame_set(int(frame // 1), subframe=float(frame - frame // 1))
        depsgraph = bpy.context.evaluated_depsgraph_get()
        values = [float(k.value) for k in keyed[1]] if keyed else []
        pts = []
        for o in meshes:
            ev = o.evaluated_get(depsgraph)
            me = ev.to_mesh()
            co = numpy.empty(len(me.vertices) * 3, dtype=numpy.float64)
            me.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3)
            m = numpy.array(ev.matrix_world)
            pts.append(co @ m[:3, :3].T + m[:3, 3])
            ev.to_mesh_clear()
        return values, (numpy.concatenate(pts) if pts else numpy.zeros((0, 3)))

    values, points = zip(*(sample(f) for f in frames[:2]))
    same = len(points[0]) == len(points[1]) and len(points[0]) > 0
    disp = float(numpy.linalg.norm(points[1] - points[0], axis=1).max()) if same else None
    report = {
        "blender_version": bpy.app.version_string, "file": path,
        "objects": len(objs), "mesh_objects": len(meshes), "meshes": per_mesh,
        "vertices": sum(m["vertices"] for m in per_mesh), "faces": sum(m["faces"] for m in per_mesh),
        "materials": sum(len(o.data.materials) for o in meshes),
        "color_attributes": sum(len(getattr(o.data, "color_attributes", [])) for o in meshes),
        "shape_keys": sum(m["shape_keys"] for m in per_mesh),
        "shape_key_animation": any(m["shape_key_action"] for m in per_mesh),
        "object_animation": any(m["object_action"] for m in per_mesh),
        "actions": len(bpy.data.actions),
        "frame_range": [lo, hi] if lo is not None else None, "fps": scene.render.fps / scene.render.fps_base,
        "frames": [float(f) for f in frames[:2]],
        "shape_key_values": [list(v) for v in values],
        "centroids": [p.mean(0).tolist() if len(p) else None for p in points],
        "bounds": [[p.min(0).tolist(), p.max(0).tolist()] if len(p) else None for p in points],
        "max_displacement": disp,
    }
    report["animated"] = report["shape_key_animation"] or report["object_animation"]
    print("''' + MARKER + r'''" + json.dumps(report), flush=True)

try:
    main()
except Exception:
    traceback.print_exc()
    sys.exit(1)
'''


def check_in_blender(glb_path: Union[str, Path], timeout: float = 120, blender: Optional[str] = None,
                     frames: Optional[Sequence[float]] = None) -> Optional[dict]:
    """Import ``glb_path`` in a Blender subprocess and report what came in (see the module docstring).

    Returns ``None`` when no Blender is installed. Raises ``FileNotFoundError`` for a missing
    file or a ``blender`` path that holds no executable, and ``RuntimeError`` when Blender fails,
    prints no report, or runs over ``timeout`` seconds."""
    glb = Path(glb_path).resolve()
    if not glb.is_file():
        raise FileNotFoundError(f"{glb}: no such file")
    exe = blender_executable(blender)
    if exe is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # Blender's own Python
    with tempfile.TemporaryDirectory(prefix="d4d_blender_check_") as tmp:
        script = Path(tmp) / "check_import.py"
        script.write_text(_SCRIPT)
        cmd = [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(script), "--", str(glb),
               *(str(float(f)) for f in (frames or ()))]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Blender did not import {glb.name} within {timeout:g} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-8:])
    raise RuntimeError(f"Blender ({exe}) exited with {proc.returncode} and no import report for {glb.name}:\n{tail}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m diffusion4d.recon.blender_check MODEL.glb [FRAME_A FRAME_B]", file=sys.stderr)
        return 2
    try:
        report = check_in_blender(argv[0], frames=[float(x) for x in argv[1:3]] or None)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"blender_check: {err}", file=sys.stderr)
        return 1
    if report is None:
        print("blender_check: no Blender installed (`blender` is not on PATH)", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


__all__ = ["blender_executable", "check_in_blender"]

if __name__ == "__main__":
    sys.exit(main())
