"""`diffusion4d curate` end to end: crafted bad inputs, rules, resume, SIGKILL + rerun, timeouts,
sharding, Objaverse mirror, captions."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from diffusion4d.data_curation.executors import run_local
from diffusion4d.data_curation.gltf.craft import GltfCraft, cube
from diffusion4d.data_curation.rules import border_touch, empty_render_rule, out_of_frame_rule
from diffusion4d.data_curation.sources import select_shard, shard_of
from diffusion4d.app import main
from diffusion4d.io import read_clip, read_manifest, read_meta

SMALL = ["--frames", "4", "--resolution", "32", "--workers", "0", "--orbits-per-asset", "2"]


def _animated_cube(scale=1.0, nan=False, spin=True):
    c = GltfCraft()
    p, n, i = cube(0.5)
    p = p * scale
    if nan:
        p[3, 1] = np.nan
    big = c.add_node(mesh=c.add_mesh(p, i, normals=n, material=c.add_material((0.9, 0.5, 0.1, 1))))
    small = c.add_node(mesh=c.add_mesh(p * 0.4, i, normals=n, material=c.add_material((0.1, 0.4, 0.9, 1))),
                       translation=[0.0, 0.0, 0.0])
    if spin:
        q = [Rotation.from_euler("y", a, degrees=True).as_quat() for a in (0, 40, 80)]
        c.add_animation([(big, "rotation", [0, 1, 2], np.stack(q), "LINEAR"),
                         (small, "translation", [0, 1, 2], [[0, 0, 0], [0, 0.25 * scale, 0], [0, 0, 0]], "LINEAR")])
    return c


def _write_bad_inputs(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    good = _animated_cube().to_glb()
    (folder / "good.glb").write_bytes(good)
    (folder / "truncated.glb").write_bytes(good[: len(good) - 40])
    js_len = int.from_bytes(good[12:16], "little")
    (folder / "corrupt_json.glb").write_bytes(good[:20] + b"\x00{]" * (js_len // 3) + b"]" * (js_len % 3) + good[20 + js_len:])
    c = _animated_cube()
    c.doc["accessors"][0]["count"] = 10_000
    (folder / "accessor_range.glb").write_bytes(c.to_glb())
    (folder / "nan_positions.glb").write_bytes(_animated_cube(nan=True).to_glb())
    _animated_cube().write_gltf(folder / "missing_buffer.gltf", bin_name="gone.bin")
    (folder / "gone.bin").unlink()
    c = _animated_cube()
    c.add_material(texture_uri="no_such_texture.png")
    c.doc["meshes"][0]["primitives"][0]["material"] = len(c.doc["materials"]) - 1
    (folder / "missing_texture.glb").write_bytes(c.to_glb())
    c = GltfCraft()
    node = c.add_node(mesh=c.add_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.zeros((0, 3), np.uint32)))
    c.add_animation([(node, "translation", [0, 1], [[0, 0, 0], [1, 0, 0]], "LINEAR")])
    (folder / "no_triangles.glb").write_bytes(c.to_glb())
    (folder / "absurd_size.glb").write_bytes(_animated_cube(scale=1e30).to_glb())
    (folder / "static.glb").write_bytes(_animated_cube(spin=False).to_glb())


EXPECTED = {
    "truncated": ("failed", "truncated"), "corrupt_json": ("failed", "corrupt"),
    "accessor_range": ("failed", "accessor_out_of_range"), "nan_positions": ("failed", "non_finite"),
    "missing_buffer": ("failed", "missing_buffer"), "missing_texture": ("failed", "missing_texture"),
    "no_triangles": ("failed", "no_triangles"), "absurd_size": ("failed", "absurd_size"),
    "static": ("rejected", "no_animation"),
}


def test_bad_inputs_each_get_a_specific_reason_and_the_run_continues(tmp_path, capsys):
    _write_bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["curate", "--input", str(tmp_path / "in"), "--output", str(out), "--modes", "dynamic,static,front,four_view",
                 "--s-low", "0.05", "--s-high", "0.999"] + SMALL) == 0
    summary = capsys.readouterr().out
    assert "rendered 10 / accepted 1 / rejected-by-rule 1 / failed 8" in summary
    records = {r["uid"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert len(records) == 10
    for uid, (status, kind) in EXPECTED.items():
        assert records[uid]["status"] == status, (uid, records[uid])
        assert records[uid]["reason"].startswith(kind), (uid, records[uid]["reason"])
        assert read_meta(out / uid)["status"] == status
    good = records["good"]
    assert good["status"] == "accepted" and good["motion_magnitude"] > 0
    meta = read_meta(out / "good")
    assert [o["dynamic"] for o in meta["orbits"]] == ["dynamic", "dynamic_1"]
    assert meta["orbits"][0]["start_azimuth"] == 0.0 and 0 < meta["orbits"][1]["start_azimuth"] < 360
    assert meta["ssim_quarter"] is not None and meta["motion_magnitude"] == meta["orbits"][0]["motion_magnitude"]
    for mode, n in (("dynamic", 4), ("static", 4), ("dynamic_1", 4), ("static_1", 4), ("front", 4), ("four_view", 16)):
        clip = read_clip(out / "good" / mode)
        assert clip.frames.shape == (n, 32, 32, 4)
    static = read_clip(out / "good" / "static")
    assert all(f.time == 0.0 for f in static.cameras.frames)
    assert (out / "curate_config.yaml").is_file()
    # rerun: everything is skipped, no row duplicated
    assert main(["curate", "--input", str(tmp_path / "in"), "--output", str(out)] + SMALL) == 0
    assert "rendered 0" in capsys.readouterr().out
    assert len(read_manifest(out / "manifest.jsonl", latest_only=False)) == 10
    # --retry-failed redoes the failures only (they fail again, the last record wins)
    assert main(["curate", "--input", str(tmp_path / "in"), "--output", str(out), "--retry-failed"] + SMALL) == 0
    assert "rendered 8" in capsys.readouterr().out
    assert len(read_manifest(out / "manifest.jsonl")) == 10


def test_rules_on_synthetic_frames():
    frames = np.zeros((3, 16, 16, 4), np.uint8)
    assert not empty_render_rule(frames).passed
    frames[1, 5:9, 5:9, 3] = 255
    assert empty_render_rule(frames).passed
    assert out_of_frame_rule({"dynamic": frames}).passed
    frames[2, 0, 7, 3] = 10
    res = out_of_frame_rule({"dynamic": frames})
    assert not res.passed and "frame 2" in res.reason
    assert border_touch(frames, border_alpha=10).sum() == 0  # alpha threshold configurable


def test_bad_config_is_one_line_user_error(tmp_path, capsys):
    (tmp_path / "a.glb").write_bytes(_animated_cube().to_glb())
    rc = main(["curate", "--input", str(tmp_path / "a.glb"), "--output", str(tmp_path / "o"), "--modes", "dynamic,sideways"])
    assert rc == 2 and "error:" in capsys.readouterr().err
    rc = main(["curate", "--output", str(tmp_path / "o")])
    assert rc == 2


def test_shards_partition_uids():
    from diffusion4d.data_curation.curate_asset import AssetTask

    tasks = [AssetTask(f"uid{i}", None, "local") for i in range(50)]
    parts = [select_shard(tasks, f"{i}/3") for i in range(3)]
    assert sorted(t.uid for p in parts for t in p) == sorted(t.uid for t in tasks)
    assert all(shard_of(t.uid, 3) == i for i, p in enumerate(parts) for t in p)


def _sleepy(task, cfg):
    time.sleep(task.extra["sleep"])
    return {"uid": task.uid, "status": "accepted", "reason": "slept"}


def test_local_executor_kills_hung_worker(tmp_path):
    from diffusion4d.data_curation.curate_asset import AssetTask

    tasks = [AssetTask("slow", None, "local", extra={"sleep": 60}), AssetTask("quick", None, "local", extra={"sleep": 0})]
    start = time.monotonic()
    results = {t.uid: r for t, r in run_local(_sleepy, tasks, None, workers=1, timeout=3.0)}
    assert time.monotonic() - start < 40
    assert results["slow"]["status"] == "failed" and results["slow"]["reason"].startswith("timeout")
    assert results["quick"]["status"] == "accepted"  # the replacement worker carried on


def _status_map(manifest):
    return {r["uid"]: r["status"] for r in read_manifest(manifest)}


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_manifest(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(9):
        (src / f"a{k}.glb").write_bytes(_animated_cube(spin=k % 3 != 0).to_glb())
    (src / "bad.glb").write_bytes(b"glTF\x02\x00\x00\x00")
    args = ["curate", "--input", str(src), "--frames", "4", "--resolution", "32", "--orbits-per-asset", "1"]
    ref = tmp_path / "ref"
    assert main(args + ["--output", str(ref), "--workers", "0"]) == 0
    killed = tmp_path / "killed"
    env = dict(os.environ, DIFFUSION4D_NO_PROGRESS="1")
    proc = subprocess.Popen([sys.executable, "-m", "diffusion4d", "curate"] + args[1:] + ["--output", str(killed), "--workers", "1"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = killed / "manifest.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_manifest(manifest)
    assert 1 <= len(partial) < 10, len(partial)  # killed mid-run
    assert main(args + ["--output", str(killed), "--workers", "0"]) == 0
    assert _status_map(manifest) == _status_map(ref / "manifest.jsonl")
    assert len(read_manifest(manifest, latest_only=False)) == 10  # no duplicated rows
    for uid, status in _status_map(manifest).items():
        if status == "accepted":
            assert read_clip(killed / uid / "dynamic").frames.shape[0] == 4


def _objaverse_mirror(root: Path, uids):
    paths, meta = {}, {}
    for k, uid in enumerate(uids):
        rel = f"glbs/000-000/{uid}.glb"
        (root / "glbs/000-000").mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_animated_cube().to_glb())
        paths[uid] = rel
        meta[uid] = {"name": f"Robot {k}", "description": "A small\nrobot", "license": "by"}
    with gzip.open(root / "object-paths.json.gz", "wt") as fh:
        json.dump(paths, fh)
    (root / "metadata").mkdir()
    with gzip.open(root / "metadata/000-000.json.gz", "wt") as fh:
        json.dump(meta, fh)


def test_the_object_an_asset_file_names_reaches_meta_manifest_and_colour_grouping(tmp_path):
    """Renders of one object (``asset.extras.object``, as procedural variants and motion swaps write)
    share ``object`` in meta.json and the manifest; the colour check groups by it, else by caption."""
    from diffusion4d.eval.samples import object_of

    folder = tmp_path / "in"
    folder.mkdir()
    for name, extras in (("one", {"object": "cube-7"}), ("two", {"object": "cube-7", "caption": "x"}), ("plain", None), ("odd", {"object": 3})):
        c = _animated_cube()
        if extras is not None:
            c.doc["asset"]["extras"] = extras
        (folder / f"{name}.glb").write_bytes(c.to_glb())
    (tmp_path / "caps.csv").write_text("one,a cube spinning\ntwo,a cube bouncing\nplain,a plain cube\nodd,an odd cube\n")
    assert main(["curate", "--input", str(folder), "--captions", str(tmp_path / "caps.csv"), "--output", str(tmp_path / "out"),
                 "--set", "rules.ssim=false"] + SMALL) == 0
    recs = {r["uid"]: r for r in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert recs["one"]["object"] == recs["two"]["object"] == "cube-7" and "object" not in recs["plain"] and "object" not in recs["odd"]
    assert [object_of(tmp_path / "out" / u) for u in ("one", "two", "plain", "odd")] == ["cube-7", "cube-7", "a plain cube", "an odd cube"]


def test_objaverse_mirror_and_captions_csv(tmp_path, capsys):
    import objaverse

    uids = ["0a1b2c3d4e5f", "ffeeddccbbaa"]
    _objaverse_mirror(tmp_path / "store", uids)
    (tmp_path / "uids.txt").write_text("\n".join(uids + ["not_in_store"]) + "\n")
    (tmp_path / "caps.csv").write_text('ffeeddccbbaa,"a robot, waving"\n')
    old = objaverse._VERSIONED_PATH
    try:
        rc = main(["curate", "--objaverse-uids", str(tmp_path / "uids.txt"), "--objaverse-path", str(tmp_path / "store"),
                   "--captions", str(tmp_path / "caps.csv"), "--output", str(tmp_path / "out"), "--orbits-per-asset", "1",
                   "--modes", "dynamic,static", "--set", "rules.ssim=false"] + SMALL[:-2])
    finally:
        objaverse._VERSIONED_PATH = old
    assert rc == 0
    recs = {r["uid"]: r for r in read_manifest(tmp_path / "out" / "manifest.jsonl")}
    assert recs["0a1b2c3d4e5f"]["caption"] == "Robot 0: A small robot" and recs["0a1b2c3d4e5f"]["license"] == "by"
    assert recs["ffeeddccbbaa"]["caption"] == "a robot, waving"
    assert recs["not_in_store"]["status"] == "failed" and recs["not_in_store"]["reason"].startswith("missing_source")
    assert recs["0a1b2c3d4e5f"]["source"] == "objaverse" and recs["0a1b2c3d4e5f"]["status"] != "failed"


@pytest.mark.slow
def test_ray_executor_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    from diffusion4d.data_curation.curate_asset import AssetTask, curate_asset
    from diffusion4d.data_curation.curate_config import CurateConfig
    from diffusion4d.data_curation.executors import run_ray

    for k in range(2):
        (tmp_path / f"r{k}.glb").write_bytes(_animated_cube().to_glb())
    cfg = CurateConfig(output=str(tmp_path / "out"))
    cfg.render.frames, cfg.render.resolution, cfg.render.orbits_per_asset, cfg.rules.ssim = 4, 32, 1, False
    tasks = [AssetTask(f"r{k}", str(tmp_path / f"r{k}.glb"), "local") for k in range(2)] + [AssetTask("x", None, "local", error="missing_source: test")]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        results = {t.uid: r for t, r in run_ray(curate_asset, tasks, cfg, workers=2, timeout=120)}
    finally:
        ray.shutdown()
    assert results["r0"]["status"] in ("accepted", "rejected") and results["r0"]["motion_magnitude"] > 0
    assert results["x"]["status"] == "failed"
    assert read_clip(tmp_path / "out" / "r1" / "dynamic").frames.shape == (4, 32, 32, 4)


def test_overrides_are_positional_like_every_command_and_set_still_works(tmp_path):
    from diffusion4d.data_curation.cli import add_arguments, build_config
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    a = p.parse_args(["--output", str(tmp_path), "rules.s_high=0.97", "--set", "rules.s_low=0.3"])
    cfg = build_config(a)
    assert cfg.rules.s_high == 0.97 and cfg.rules.s_low == 0.3
