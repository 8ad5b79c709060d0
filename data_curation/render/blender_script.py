"""Render script executed INSIDE Blender (Debian 3.4, official 4.x/5.x, or bpy):

    blender -b --python blender_script.py -- --job job.json

``job.json``: {"asset", "output", "width", "height", "engine", "samples", "normalize",
"frames": [{"time", "c2w_blender" (4x4 row-major), "K" (3x3)}], "info"}. Writes
``output/{i:03d}.png`` (RGBA, transparent film) and ``info`` (JSON: duration, fps, extent,
or an error). Same conventions as the fast renderer: animation time normalised to [0, 1]
over the animation's frame range; object normalised into the unit box by its bounds at t0.
No imports from our packages: Blender's Python may not have them.
"""

import json
import math
import sys
import traceback


def _patch_numpy():
    try:
        import numpy

        if not hasattr(numpy, "bool"):  # Debian's Blender 3.4 glTF importer uses numpy.bool
            numpy.bool = bool
    except ImportError:
        pass


def _import_asset(bpy, path):
    ext = path.lower().rsplit(".", 1)[-1]
    if ext in ("glb", "gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif ext == "fbx":
        bpy.ops.import_scene.fbx(filepath=path)
    elif ext == "obj":
        (bpy.ops.wm.obj_import if hasattr(bpy.ops.wm, "obj_import") else bpy.ops.import_scene.obj)(filepath=path)
    elif ext == "dae":
        bpy.ops.wm.collada_import(filepath=path)
    elif ext == "abc":
        bpy.ops.wm.alembic_import(filepath=path)
    elif ext in ("usd", "usda", "usdc", "usdz"):
        bpy.ops.wm.usd_import(filepath=path)
    elif ext == "ply":
        (bpy.ops.wm.ply_import if hasattr(bpy.ops.wm, "ply_import") else bpy.ops.import_mesh.ply)(filepath=path)
    elif ext == "stl":
        (bpy.ops.wm.stl_import if hasattr(bpy.ops.wm, "stl_import") else bpy.ops.import_mesh.stl)(filepath=path)
    elif ext == "blend":
        bpy.ops.wm.open_mainfile(filepath=path)
    else:
        raise RuntimeError(f"unsupported: Blender cannot import .{ext}")


def _frame_range(bpy):
    lo, hi = None, None
    for action in bpy.data.actions:
        a, b = action.frame_range
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return (0.0, 0.0) if lo is None else (float(lo), float(hi))


def _set_time(bpy, scene, frame):
    whole = math.floor(frame)
    scene.frame_set(int(whole), subframe=float(frame - whole))


def _world_bounds(bpy, scene):
    from mathutils import Vector

    depsgraph = bpy.context.evaluated_depsgraph_get()
    lo = Vector((math.inf,) * 3)
    hi = Vector((-math.inf,) * 3)
    count = 0
    for obj in scene.objects:
        if obj.type != "MESH":
            continue
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        for v in mesh.vertices:
            p = ev.matrix_world @ v.co
            lo = Vector(map(min, lo, p))
            hi = Vector(map(max, hi, p))
            count += 1
        ev.to_mesh_clear()
    return lo, hi, count


def main(argv):
    _patch_numpy()
    import bpy
    from mathutils import Matrix

    job = json.load(open(argv[argv.index("--job") + 1]))
    info = {"ok": False}
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _import_asset(bpy, job["asset"])
        scene = bpy.context.scene
        fps = scene.render.fps / scene.render.fps_base
        start, end = _frame_range(bpy)
        info.update(duration=(end - start) / fps, fps=fps, frame_start=start, frame_end=end)
        _set_time(bpy, scene, start)
        lo, hi, count = _world_bounds(bpy, scene)
        if count == 0:
            raise RuntimeError("no_triangles: the asset has no mesh vertices")
        if job.get("normalize", "t0") == "all" and end > start:
            for k in range(1, 25):
                _set_time(bpy, scene, start + (end - start) * k / 24)
                a, b, _ = _world_bounds(bpy, scene)
                lo, hi = type(lo)(map(min, lo, a)), type(hi)(map(max, hi, b))
        extent = max(hi - lo)
        info["extent"] = extent
        if not (1e-6 <= extent <= job.get("max_extent", 1e6)):
            raise RuntimeError(f"absurd_size: bounding box side {extent:.3g}")
        centre = (lo + hi) / 2
        root = bpy.data.objects.new("d4d_normaliser", None)
        scene.collection.objects.link(root)
        for obj in list(scene.objects):
            if obj.parent is None and obj is not root:
                obj.parent = root
        root.scale = (1.0 / extent,) * 3
        root.location = -centre / extent
        # camera
        width, height = job["width"], job["height"]
        cam_data = bpy.data.cameras.new("d4d_cam")
        cam = bpy.data.objects.new("d4d_cam", cam_data)
        scene.collection.objects.link(cam)
        scene.camera = cam
        cam_data.sensor_fit = "HORIZONTAL" if width >= height else "VERTICAL"
        cam_data.sensor_width = cam_data.sensor_height = 36.0
        cam_data.clip_start, cam_data.clip_end = 0.01, 100.0
        r = scene.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = width, height, 100
        r.film_transparent = True
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGBA"
        engine = job.get("engine", "workbench")
        if engine == "cycles":
            r.engine = "CYCLES"
            scene.cycles.samples = int(job.get("samples", 16))
            scene.cycles.device = "CPU"
            if hasattr(scene.cycles, "use_denoising"):
                scene.cycles.use_denoising = False
        elif engine == "eevee":
            r.engine = "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in [e.identifier for e in r.bl_rna.properties["engine"].enum_items] else "BLENDER_EEVEE"
        else:
            r.engine = "BLENDER_WORKBENCH"
        if engine != "workbench":  # the fixed light rig of the fast renderer, as sun lights
            world = bpy.data.worlds.new("d4d_world")
            world.color = (0.25, 0.25, 0.25)
            scene.world = world
            for name, az, el, power in (("key", 45, 35, 0.75), ("fill", -60, 15, 0.35), ("rim", 180, 30, 0.45), ("bottom", 0, -80, 0.15)):
                light = bpy.data.objects.new(name, bpy.data.lights.new(name, "SUN"))
                light.data.energy = power * 3.0
                a, e = math.radians(az), math.radians(el)
                d = (math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e))
                light.rotation_euler = Matrix.Identity(3).to_euler()
                light.rotation_mode = "QUATERNION"
                from mathutils import Vector

                light.rotation_quaternion = Vector(d).to_track_quat("Z", "Y")
                scene.collection.objects.link(light)
        for i, fr in enumerate(job["frames"]):
            K = fr["K"]
            big = max(width, height)
            cam_data.lens = K[0][0] * 36.0 / big
            cam_data.shift_x = -(K[0][2] - width / 2.0) / big
            cam_data.shift_y = (K[1][2] - height / 2.0) / big
            cam.matrix_world = Matrix(fr["c2w_blender"])
            _set_time(bpy, scene, start + fr["time"] * (end - start))
            r.filepath = f"{job['output']}/{i:03d}.png"
            bpy.ops.render.render(write_still=True)
        info["ok"] = True
    except Exception as err:
        info["error"] = f"{type(err).__name__}: {err}"
        info["traceback"] = traceback.format_exc()
    with open(job["info"], "w") as fh:
        json.dump(info, fh)
    sys.exit(0 if info["ok"] else 3)


if __name__ == "__main__":
    main(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])
