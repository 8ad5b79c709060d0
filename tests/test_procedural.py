"""Tests of the procedural animated asset generator (diffusion4d.data_curation.procedural)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from diffusion4d.data_curation.procedural import (MOTION_FAMILIES, build_asset_glb, caption_for,
                                      generate_assets, sample_asset_spec)
from diffusion4d.data_curation.procedural.assets import FAMILIES
from diffusion4d.data_curation.gltf import load_scene
from diffusion4d.data_curation.procedural.spec import MOTION_BOX_HALF

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / "tools" / "gltf_validator"
COUNT = 14


@pytest.fixture(scope="module")
def asset_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("procedural")
    generate_assets(out, COUNT, seed=0, show_progress=False)
    return out


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory) -> Path:
    """One asset of every (family, variant, interpolation) reachable in the first seeds."""
    out = tmp_path_factory.mktemp("variants")
    seen = set()
    for seed in range(40):
        for index in range(21):
            spec = sample_asset_spec(seed, index)
            key = (spec.family, spec.variant, spec.interpolation)
            if key not in seen:
                seen.add(key)
                (out / f"{spec.uid}.glb").write_bytes(build_asset_glb(spec))
    variants = {(f, v) for f, v, _ in seen}
    assert len(variants) == 3 + 3 + 2 + 3 + 3 + 3 + 1, sorted(variants)
    return out


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "assets.jsonl").read_text().splitlines()]


# -- a tiny reference evaluator of the pose at keyframe times ---------------------------------
def _read(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}[acc.componentType]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    data = np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start)
    return data.reshape(acc.count, width) if width > 1 else data


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _posed_vertices(gltf: pygltflib.GLTF2, blob: bytes, key: int) -> np.ndarray:
    """World positions of all vertices at keyframe ``key`` of the animation (rest pose if none)."""
    trs = {i: {"translation": n.translation or [0, 0, 0], "rotation": n.rotation or [0, 0, 0, 1],
               "scale": n.scale or [1, 1, 1], "weights": None} for i, n in enumerate(gltf.nodes)}
    for anim in gltf.animations:
        for ch in anim.channels:
            sampler = anim.samplers[ch.sampler]
            out = _read(gltf, blob, sampler.output)
            times = _read(gltf, blob, sampler.input)
            k = min(key, len(times) - 1)
            if ch.target.path == "weights":
                out = out.reshape(len(times) * (3 if sampler.interpolation == "CUBICSPLINE" else 1), -1)
            value = out[3 * k + 1] if sampler.interpolation == "CUBICSPLINE" else out[k]
            trs[ch.target.node][ch.target.path] = value
    parents = {c: i for i, n in enumerate(gltf.nodes) for c in n.children}

    def world(i: int) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = _quat_matrix(trs[i]["rotation"]) * np.asarray(trs[i]["scale"])[None]
        m[:3, 3] = trs[i]["translation"]
        return m if i not in parents else world(parents[i]) @ m

    points = []
    for i, node in enumerate(gltf.nodes):
        if node.mesh is None:
            continue
        mesh = gltf.meshes[node.mesh]
        for prim in mesh.primitives:
            pos = _read(gltf, blob, prim.attributes.POSITION).astype(np.float64)
            weights = trs[i]["weights"] if trs[i]["weights"] is not None else (mesh.weights or [])
            for w, target in zip(weights, prim.targets or []):
                pos = pos + w * _read(gltf, blob, _target_position(target))
            homo = np.concatenate([pos, np.ones((len(pos), 1))], axis=1)
            if node.skin is None:
                points.append((homo @ world(i).T)[:, :3])
                continue
            skin = gltf.skins[node.skin]
            ibm = _read(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
            mats = np.stack([world(j) @ ibm[k] for k, j in enumerate(skin.joints)])
            joints = _read(gltf, blob, prim.attributes.JOINTS_0).astype(int)
            wts = _read(gltf, blob, prim.attributes.WEIGHTS_0).astype(np.float64)
            blended = np.einsum("nk,nkij->nij", wts, mats[joints])
            points.append(np.einsum("nij,nj->ni", blended, homo)[:, :3])
    return np.concatenate(points)


def _target_position(target) -> int:
    """pygltflib loads morph targets as plain dicts."""
    return target["POSITION"] if isinstance(target, dict) else target.POSITION


def _key_count(gltf: pygltflib.GLTF2) -> int:
    return max([gltf.accessors[s.input].count for a in gltf.animations for s in a.samplers] or [1])


# -- the generated set ------------------------------------------------------------------------
def test_set_covers_every_family_and_metadata_matches(asset_dir: Path) -> None:
    glbs = sorted(asset_dir.glob("*.glb"))
    assert len(glbs) == COUNT
    assert [p.name for p in glbs] == [f"proc-s0-{i:04d}.glb" for i in range(COUNT)]
    records = _records(asset_dir)
    assert {r["family"] for r in records} == set(MOTION_FAMILIES)
    with open(asset_dir / "captions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [[r["uid"], r["caption"]] for r in records]
    for r in records:
        assert (asset_dir / r["file"]).is_file()
        assert r["colour"] in r["caption"] and r["shape"] in r["caption"]
        for key in ("textured", "interpolation", "motion_amplitude", "duration_s", "variant"):
            assert key in r
        assert (r["family"] == "static") == (r["interpolation"] is None) == (r["motion_amplitude"] == 0)
    animated = [r for r in records if r["family"] != "static"]
    assert {r["interpolation"] for r in animated} == {"LINEAR", "STEP", "CUBICSPLINE"}
    assert any(r["textured"] for r in records) and not all(r["textured"] for r in records)
    amplitudes = [r["motion_amplitude"] for r in animated]
    assert min(amplitudes) < 0.35 and max(amplitudes) > 0.7


def test_same_seed_same_bytes_other_seed_differs(asset_dir: Path, tmp_path: Path) -> None:
    again = generate_assets(tmp_path / "again", COUNT, seed=0, show_progress=False)
    for asset in again:
        assert asset.path.read_bytes() == (asset_dir / asset.path.name).read_bytes()
    for name in ("captions.csv", "assets.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (asset_dir / name).read_bytes()
    other = generate_assets(tmp_path / "other", COUNT, seed=1, show_progress=False)
    assert other[0].uid == "proc-s1-0000"
    assert [a.caption for a in other] != [a.caption for a in again]
    assert all(a.path.read_bytes() != b.path.read_bytes() for a, b in zip(again, other))


def test_files_load_with_pygltflib_and_trimesh(asset_dir: Path) -> None:
    trimesh = pytest.importorskip("trimesh")
    for r in _records(asset_dir):
        path = asset_dir / r["file"]
        gltf = pygltflib.GLTF2().load(str(path))
        assert gltf.asset.version == "2.0"
        scene = trimesh.load(str(path))
        assert isinstance(scene, trimesh.Scene) and len(scene.geometry) > 0
        family = r["family"]
        if family == "static":
            assert not gltf.animations
            continue
        assert gltf.animations
        interps = {s.interpolation for a in gltf.animations for s in a.samplers}
        assert interps == {r["interpolation"]}
        if family == "articulated":
            skin = gltf.skins[0]
            assert len(skin.joints) >= 3 and skin.inverseBindMatrices is not None
            prim = gltf.meshes[0].primitives[0]
            assert prim.attributes.JOINTS_0 is not None and prim.attributes.WEIGHTS_0 is not None
            paths = {c.target.path for a in gltf.animations for c in a.channels}
            assert paths == {"rotation"}
        if family == "morph":
            assert len(gltf.meshes[0].primitives[0].targets) == 2
            assert {c.target.path for a in gltf.animations for c in a.channels} == {"weights"}
        if family == "multipart":
            assert len(gltf.meshes) >= 2
            assert len({c.target.node for a in gltf.animations for c in a.channels}) >= 2
        if r["textured"]:
            assert gltf.images[0].mimeType == "image/png" and gltf.samplers


def test_every_variant_stays_in_motion_box_and_loops(variant_dir: Path) -> None:
    for path in sorted(variant_dir.glob("*.glb")):
        gltf = pygltflib.GLTF2().load(str(path))
        blob = gltf.binary_blob()
        rest = _posed_vertices(gltf, blob, 0)
        extent = rest.max(axis=0) - rest.min(axis=0)
        assert 0.5 <= extent.max() <= 1.5, (path.name, extent)
        n_keys = _key_count(gltf)
        for key in range(n_keys):
            posed = _posed_vertices(gltf, blob, key)
            assert np.abs(posed).max() <= MOTION_BOX_HALF + 1e-3, (path.name, key, np.abs(posed).max())
        # loops: the last keyframe pose equals the first
        np.testing.assert_allclose(_posed_vertices(gltf, blob, n_keys - 1), rest, atol=1e-4,
                                   err_msg=path.name)


def test_skin_weights_and_morph_targets_are_well_formed(variant_dir: Path) -> None:
    for path in sorted(variant_dir.glob("*.glb")):
        gltf = pygltflib.GLTF2().load(str(path))
        blob = gltf.binary_blob()
        for mesh in gltf.meshes:
            for prim in mesh.primitives:
                normals = _read(gltf, blob, prim.attributes.NORMAL)
                np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
                assert _read(gltf, blob, prim.attributes.TEXCOORD_0).shape[1] == 2
                if prim.attributes.WEIGHTS_0 is not None:
                    w = _read(gltf, blob, prim.attributes.WEIGHTS_0)
                    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)
                    j = _read(gltf, blob, prim.attributes.JOINTS_0)
                    assert j.dtype == np.uint8 and j.max() < len(gltf.skins[0].joints)
                for target in prim.targets or []:
                    acc = gltf.accessors[_target_position(target)]
                    assert acc.min is not None and acc.max is not None


def test_motion_amplitude_changes_motion_size() -> None:
    def path_length(spec) -> float:
        """Mean distance a vertex travels over one loop, from keyframe to keyframe."""
        gltf = pygltflib.GLTF2.load_from_bytes(build_asset_glb(spec))
        blob = gltf.binary_blob()
        poses = np.stack([_posed_vertices(gltf, blob, k) for k in range(_key_count(gltf))])
        return float(np.linalg.norm(np.diff(poses, axis=0), axis=-1).sum(axis=0).mean())

    for index in range(len(MOTION_FAMILIES) - 1):  # every animated family
        small, large = sample_asset_spec(0, index), sample_asset_spec(0, index)
        for spec, amplitude in ((small, 0.1), (large, 1.0)):
            spec.motion_amplitude = amplitude
            FAMILIES[spec.family].sample(np.random.default_rng(5), spec)
        assert path_length(large) > 1.2 * path_length(small), small.family


def test_amplitude_variants_are_the_same_object_moving_less(tmp_path: Path) -> None:
    for index in range(len(MOTION_FAMILIES)):
        full, half = sample_asset_spec(0, index), sample_asset_spec(0, index, 0.5)
        assert half.uid == full.uid + "-a0.5" and caption_for(half) == caption_for(full)
        assert (half.shape, half.colour, half.pattern, half.family, half.variant) == (full.shape, full.colour, full.pattern, full.family, full.variant)
        assert half.motion_amplitude == pytest.approx(full.motion_amplitude * 0.5, abs=1e-3)
    assets = generate_assets(tmp_path, 2, seed=0, amplitudes=[1.0, 0.5])
    assert [a.uid for a in assets] == ["proc-s0-0000", "proc-s0-0000-a0.5", "proc-s0-0001", "proc-s0-0001-a0.5"]
    rows = list(csv.reader(open(tmp_path / "captions.csv")))
    assert rows[0][1] == rows[1][1] and [json.loads(l)["amplitude_scale"] for l in open(tmp_path / "assets.jsonl")] == [1.0, 0.5, 1.0, 0.5]
    for bad in ([0.5], [1.0, 0.0], [1.0, 1.5], [1.0, 0.5, 0.5]):
        with pytest.raises(ValueError, match="amplitudes"):
            generate_assets(tmp_path / "bad", 1, seed=0, amplitudes=bad)


def test_motion_swaps_put_one_motion_on_another_object(tmp_path: Path) -> None:
    for index in range(len(MOTION_FAMILIES)):
        partner = (index + 1) % len(MOTION_FAMILIES)
        own, mover, swap = sample_asset_spec(0, index), sample_asset_spec(0, partner), sample_asset_spec(0, index, motion_from=partner)
        assert swap.uid == own.uid + f"-m{partner:04d}"
        assert (swap.shape, swap.colour, swap.colour2, swap.pattern) == (own.shape, own.colour, own.colour2, own.pattern)
        assert (swap.family, swap.interpolation, swap.motion_amplitude) == (mover.family, mover.interpolation, mover.motion_amplitude)
        if swap.shape == mover.shape:  # shape-independent draws: the very same motion
            assert (swap.variant, swap.params) == (mover.variant, mover.params)
        assert caption_for(swap).startswith(caption_for(own).split(f" {own.shape} ")[0] + f" {own.shape} ")
        assert caption_for(swap).endswith(FAMILIES[mover.family].phrase(swap))
    half_swap = sample_asset_spec(0, 0, 0.5, motion_from=1)
    assert half_swap.uid == "proc-s0-0000-m0001-a0.5"
    for bad in (-1, 0):
        with pytest.raises(ValueError, match="motion_from"):
            sample_asset_spec(0, 0, motion_from=bad)
    plain = generate_assets(tmp_path / "plain", 3, seed=0)
    assets = generate_assets(tmp_path / "swaps", 3, seed=0, motion_shifts=[1, 2])
    assert [a.uid for a in assets] == ["proc-s0-0000", "proc-s0-0001", "proc-s0-0002",
                                       "proc-s0-0000-m0001", "proc-s0-0000-m0002", "proc-s0-0001-m0002",
                                       "proc-s0-0001-m0000", "proc-s0-0002-m0000", "proc-s0-0002-m0001"]
    for a in plain:  # the originals are unchanged, byte for byte
        assert (tmp_path / "swaps" / a.path.name).read_bytes() == a.path.read_bytes()
    rows = [json.loads(l) for l in open(tmp_path / "swaps" / "assets.jsonl")]
    assert [r["motion_from"] for r in rows] == [None, None, None, 1, 2, 2, 0, 0, 1]
    for a in assets:  # every render of one object names it in the file: the colour check counts it once
        assert load_scene(a.path).asset_extras["object"] == a.uid[:len("proc-s0-0000")]
    for bad in ([3], [1, 1], [0], [-1, 2]):
        with pytest.raises(ValueError, match="motion_shifts"):
            generate_assets(tmp_path / "bad", 3, seed=0, motion_shifts=bad)


def test_captions_are_regular() -> None:
    for index in range(len(MOTION_FAMILIES)):
        spec = sample_asset_spec(3, index)
        caption = caption_for(spec)
        assert caption.startswith(("a ", "an ")) and caption == caption.lower()
        assert f"{spec.colour} " in caption and len(caption.split()) <= 12
    spec = sample_asset_spec(0, 6)
    assert caption_for(spec).endswith("that is static")


def test_colours_round_robin_over_the_palette() -> None:
    """Any len(COLOURS) consecutive assets of a set have distinct colours (a colour word names one
    object), the order depends on the seed, and a variant keeps its object's colour."""
    from diffusion4d.data_curation.procedural.assets import colour_order
    from diffusion4d.data_curation.procedural.materials import COLOURS

    assert COUNT <= len(COLOURS)
    for seed in range(4):
        assert sorted(colour_order(seed)) == sorted(COLOURS)
        colours = [sample_asset_spec(seed, i).colour for i in range(2 * len(COLOURS))]
        for start in range(len(COLOURS)):
            assert len(set(colours[start:start + len(COLOURS)])) == len(COLOURS)
        assert all(sample_asset_spec(seed, i).colour2 != c for i, c in enumerate(colours))
        assert sample_asset_spec(seed, 3, 0.5).colour == colours[3]
    assert len({colour_order(seed) for seed in range(4)}) == 4


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        generate_assets("/nonexistent-never-written", 0, seed=0)
    with pytest.raises(ValueError):
        sample_asset_spec(-1, 0)


# -- Khronos validator ------------------------------------------------------------------------
def _validator_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (CI installs it)")
    if not (VALIDATOR / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("gltf-validator missing: run `npm install --prefix tools/gltf_validator`")
    return node


@pytest.mark.parametrize("which", ["asset_dir", "variant_dir"])
def test_khronos_validator_reports_no_errors(which: str, request) -> None:
    node = _validator_or_skip()
    folder = request.getfixturevalue(which)
    files = sorted(str(p) for p in folder.glob("*.glb"))
    proc = subprocess.run([node, str(VALIDATOR / "validate.js"), *files], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(proc.stdout)
    bad = {f["path"]: f["messages"] for f in report["files"] if f["errors"] or f["warnings"]}
    assert proc.returncode == 0 and not bad, bad
    assert len(report["files"]) == len(files)


# -- command line -----------------------------------------------------------------------------
def test_cli_module_run(tmp_path: Path) -> None:
    from diffusion4d.data_curation.procedural import cli
    from diffusion4d.errors import UserError

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--output", str(tmp_path / "out"), "--count", "3", "--seed", "2"])
    assert cli.run(args) == 0
    assert len(list((tmp_path / "out").glob("proc-s2-*.glb"))) == 3
    with pytest.raises(UserError):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=0, seed=0))
    with pytest.raises(UserError):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=2, seed=-3))
    with pytest.raises(UserError, match="amplitudes"):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=2, seed=0, amplitudes="1,x"))
    with pytest.raises(UserError, match="amplitudes"):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=2, seed=0, amplitudes="0.5"))
    with pytest.raises(UserError, match="motion-shifts"):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=2, seed=0, amplitudes="1", motion_shifts="x"))
    with pytest.raises(UserError, match="motion_shifts"):
        cli.run(argparse.Namespace(output=str(tmp_path / "bad"), count=2, seed=0, amplitudes="1", motion_shifts="2"))
    assert cli.run(argparse.Namespace(output=str(tmp_path / "sw"), count=2, seed=0, amplitudes="1", motion_shifts="1")) == 0
    assert len(list((tmp_path / "sw").glob("*-m000*.glb"))) == 2


def test_cli_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "assets"
    env = dict(os.environ, DIFFUSION4D_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, "-m", "diffusion4d", "assets", "--output", str(out),
                           "--count", "7"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("*.glb"))) == 7
    assert {r["family"] for r in _records(out)} == set(MOTION_FAMILIES)
    bad = subprocess.run([sys.executable, "-m", "diffusion4d", "assets", "--output", str(out),
                          "--count", "-1"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("got -1")
