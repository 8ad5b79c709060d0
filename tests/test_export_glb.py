"""Animated glTF export of a reconstruction (recon/mesh_export.py), checked by the round trip:
the exported .glb passes the Khronos validator, loads through the project's own glTF loader with
its animation, poses exactly like the model's deformation code, and renders (fast renderer,
the clip's cameras) like the Gaussians and the ground-truth orbit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion4d.cameras import GLTF_TO_WORLD

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / "tools" / "gltf_validator"

# measured on this case (24 px, 6 frames, the `test` preset with 80 coarse steps, iso 0.2):
# silhouette IoU 0.90 mesh vs Gaussians (24.3 dB), 0.74 mesh vs ground truth, while the Gaussians
# themselves reach only 0.75 / 18.8 dB against the ground truth on so short a fit. A 24 px
# silhouette of a ~12 px object is mostly edge pixels; see benchmarks/RESULTS.md for 64 px.
IOU_VS_GAUSSIANS = 0.8
IOU_VS_GROUND_TRUTH = 0.65


def _validate(paths):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (CI installs it)")
    if not (VALIDATOR / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("gltf-validator missing: run `npm install --prefix tools/gltf_validator`")
    proc = subprocess.run([node, str(VALIDATOR / "validate.js"), *map(str, paths)], capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A procedural asset (a cone moving in a circle) curated to 24 px clips and reconstructed."""
    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.glb_roundtrip import write_procedural_clips

    root = tmp_path_factory.mktemp("export")
    clip = write_procedural_clips(root, index=1, frames=6, size=24)
    out = root / "recon"
    reconstruct(clip, out, preset="test", backend="torch", overrides=[
        "output.videos=false", "output.ply=false", "coarse.iterations=80", "fine.iterations=10",
        "fine.rigid_knots=0", "fine.time_curriculum=0"])  # fmt: skip
    return clip, out


@pytest.fixture(scope="module")
def exported(fitted):
    from diffusion4d.recon.mesh_export import export_glb

    clip, out = fitted
    report = export_glb(out, out / "export" / "model.glb", vertices=3000, grid=48)
    return clip, out, report


def test_export_round_trip(exported):
    from diffusion4d.data_curation.gltf import load_scene
    from diffusion4d.io import read_cameras
    from diffusion4d.recon.glb_roundtrip import roundtrip

    clip, out, report = exported
    glb = Path(report["glb"])
    assert glb.is_file() and json.loads(glb.with_suffix(".json").read_text())["bytes"] == glb.stat().st_size
    assert report["frames"] == 6 and report["vertices"] <= 3000 * 1.05 and report["faces"] > 100
    # loads through our loader, with the animation timed like the clip
    cams = read_cameras(clip)
    scene = load_scene(glb)
    assert scene.animation is not None and scene.duration == pytest.approx(cams.duration_seconds, abs=1e-5)
    prim = scene.meshes[0].primitives[0]
    assert len(prim.target_positions) == 6 and prim.colors is not None
    assert report["key_seconds"] == pytest.approx([f.time_seconds for f in cams.frames], abs=1e-6)
    # renders like the Gaussians and the ground truth
    r = roundtrip(glb, out)
    assert r["mesh_frames"].shape == (6, 24, 24, 4)
    assert r["vs_gaussians"]["iou_mean"] >= IOU_VS_GAUSSIANS, r["vs_gaussians"]
    assert r["vs_ground_truth"]["iou_mean"] >= IOU_VS_GROUND_TRUTH, r["vs_ground_truth"]
    print({k: {a: b for a, b in v.items() if "per" not in a} for k, v in r.items() if k != "mesh_frames"})
    assert r["vs_gaussians"]["psnr_mean"] > 14.0


def test_export_passes_khronos_validator(exported):
    rc, report = _validate([exported[2]["glb"]])
    f = report["files"][0]
    assert rc == 0 and f["errors"] == 0 and f["warnings"] == 0, f["messages"]


def _known_model(seed: int = 0):
    """A blob of Gaussians off the origin + a field with random local offsets and a rigid spin."""
    from diffusion4d.recon.deformation import HexPlaneDeformation
    from diffusion4d.recon.gaussians import GaussianModel

    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([0.15, -0.1, 0.05])
    pts = torch.randn(600, 3, generator=g) * torch.tensor([0.12, 0.08, 0.2]) + centre
    model = GaussianModel.from_points(pts, torch.rand(600, 3, generator=g), sh_degree=0, init_opacity=0.9)
    with torch.no_grad():
        model.params["scales"].fill_(float(np.log(0.03)))
    field = HexPlaneDeformation(resolutions=[8], time_resolution=4, features=4, hidden=16, rigid_knots=5)
    with torch.no_grad():
        for p in field.planes:
            p.uniform_(0.2, 1.0, generator=g)
        for head in field.heads.values():
            head.weight.normal_(0.0, 0.02, generator=g)
        field.rigid.rotvecs.copy_(torch.tensor([[0, 0, 0.4], [0, 0, 0.9], [0.2, 0, 1.4], [0.3, 0.1, 2.0]]))
        field.rigid.translations.copy_(torch.tensor([[0, 0.05, 0], [0, 0.1, 0.02], [0.05, 0.1, 0.04], [0.1, 0.1, 0.05]]))
        field.rigid.centre.copy_(centre)
    model.requires_grad_(False)
    field.requires_grad_(False)
    return model, field, centre


def test_pose_matches_the_model_deformation_and_world_frame(tmp_path):
    """Loading the export and posing it at frame i's time == moving its t0... canonical vertices with
    the model's own deform code (local offsets then the rigid motion), in our Z-up world."""
    from diffusion4d.data_curation.gltf import load_scene
    from diffusion4d.recon.deformation import apply_local, apply_rigid
    from diffusion4d.recon.mesh_export import export_glb

    model, field, centre = _known_model()
    times = np.linspace(0, 1, 7)
    report = export_glb((model, field, times, 3.0), tmp_path / "k.glb", vertices=2000, grid=40, colour="kernel")
    assert report["rigid_animation"] and report["frames"] == 7
    rc, val = _validate([tmp_path / "k.glb"]) if shutil.which("node") and (VALIDATOR / "node_modules").is_dir() else (0, None)
    assert rc == 0, val
    scene = load_scene(tmp_path / "k.glb")
    assert scene.duration == pytest.approx(3.0)
    base_world = scene.meshes[0].primitives[0].positions @ GLTF_TO_WORLD[:3, :3].T  # canonical vertices, world frame
    # the canonical mesh sits where the Gaussians are (Z up: no axis swap)
    means = model.params["means"].numpy()
    box = lambda p: (p.min(0) + p.max(0)) / 2  # noqa: E731
    assert np.allclose(box(base_world), box(means), atol=0.05), (box(base_world), box(means))
    assert np.allclose(base_world.mean(0), means.mean(0), atol=0.05)
    v = torch.as_tensor(base_world, dtype=torch.float32)
    n = len(v)
    for i, t in enumerate(times):
        item = scene.evaluate(scene.time_at(t))[0]
        g = {"means": v, "quats": torch.tensor([[1.0, 0, 0, 0]]).expand(n, 4), "scales": torch.full((n, 3), 1e-4),
             "opacities": torch.ones(n), "sh": torch.zeros(n, 1, 3)}
        expected = apply_rigid(apply_local(g, field, float(t)), field.rigid, float(t))["means"].numpy()
        assert np.abs(item.positions - expected).max() < 2e-3, (i, np.abs(item.positions - expected).max())
    # between frames the node's rotation is interpolated: the pose stays near the model's
    item = scene.evaluate(scene.time_at(0.5 * (times[2] + times[3])))[0]
    assert np.isfinite(item.positions).all()


def test_export_without_rigid_motion_and_unlit(tmp_path):
    from diffusion4d.recon.gaussians import GaussianModel
    from diffusion4d.recon.mesh_export import export_glb

    model = GaussianModel.from_points(torch.randn(300, 3) * 0.1, sh_degree=0, init_opacity=0.9)
    report = export_glb((model, None), tmp_path / "s.glb", vertices=500, grid=32, lighting="unlit", colour="kernel")
    assert report["frames"] == 1 and report["morph_targets"] == 0 and report["vertices"] <= 525
    from diffusion4d.data_curation.gltf import load_document, load_scene

    assert load_scene(tmp_path / "s.glb").animation is None
    doc = load_document(tmp_path / "s.glb")
    assert doc.raw["extensionsUsed"] == ["KHR_materials_unlit"]


def _closed_mesh_check(glb: Path) -> dict:
    """The mesh as written to ``glb`` (the project's loader): edge counts, trimesh's verdicts, volume."""
    import trimesh

    from diffusion4d.data_curation.gltf import load_scene
    from diffusion4d.recon.mesh_export import edge_counts

    prim = load_scene(glb).meshes[0].primitives[0]
    tm = trimesh.Trimesh(prim.positions, prim.indices, process=False)
    assert all(t.shape == prim.positions.shape for t in prim.target_positions)  # morph targets follow the vertices
    return {"watertight": bool(tm.is_watertight), "winding": bool(tm.is_winding_consistent), "volume": float(tm.volume),
            **edge_counts(prim.indices)}


def test_exported_meshes_are_watertight(exported, tmp_path):
    """Marching cubes closes every surface; the decimation breaks that (fins, edges shared by two
    sheets) and make_manifold repairs it. Without the repair the cone at 800 vertices / grid 32 and
    the known model at 500 / 32 are not watertight (fast-simplification 0.2)."""
    from diffusion4d.recon.mesh_export import export_glb

    _, out, report = exported
    model, field, _ = _known_model()
    cases = {"cone 3000/48": (Path(report["glb"]), report),
             "cone 800/32": (tmp_path / "c800.glb", export_glb(out, tmp_path / "c800.glb", vertices=800, grid=32, colour="kernel"))}
    for vb in (500, 2000):
        glb = tmp_path / f"k{vb}.glb"
        cases[f"known {vb}/32"] = (glb, export_glb((model, field, np.linspace(0, 1, 4), 1.0), glb, vertices=vb, grid=32, colour="kernel"))
    for name, (glb, rep) in cases.items():
        got = _closed_mesh_check(glb)
        assert got["boundary"] == 0 and got["non_manifold"] == 0, (name, got, rep["repair"])
        assert got["watertight"] and got["winding"] and got["volume"] > 0, (name, got)  # closed, outward-facing
        assert rep["watertight"] is True and rep["repair"]["non_manifold_edges_left"] == 0, (name, rep["repair"])


def _tetra(i0: int):
    """The 4 outward triangles of the tetrahedron (0,0,0), x, y, z stored as vertices i0..i0+3."""
    a, b, c, d = i0, i0 + 1, i0 + 2, i0 + 3
    return [(a, c, b), (a, b, d), (a, d, c), (b, c, d)]


def test_make_manifold_fin_and_shared_edge():
    """Hand-made defects of the kind decimation leaves: a back-to-back fin hanging off a closed
    tetrahedron, and two tetrahedra sharing one edge (4 triangles on it)."""
    import trimesh

    from diffusion4d.recon.mesh_export import edge_counts, make_manifold

    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    # a fin: (0, 1, 4) and (1, 0, 4) back to back on the tetrahedron's edge 0-1; vertex 4 then dangles
    verts = np.concatenate([tet, [[0.5, -1.0, -1.0]]])
    faces = np.array(_tetra(0) + [(0, 1, 4), (1, 0, 4)])
    assert edge_counts(faces) == {"boundary": 0, "non_manifold": 1}
    v, f, st = make_manifold(verts, faces)
    assert st["fins"] == 1 and len(v) == 4 and np.array_equal(v, tet) and sorted(map(tuple, f)) == sorted(_tetra(0))
    # two tetrahedra sharing the edge 0-1: (0, 1, 2, 3) and (0, 1, 4, 5) with 4, 5 mirrored below
    verts = np.concatenate([tet, [[0, -1, 0], [0, 0, -1]]])
    second = [(0, 1, 5), (0, 4, 1), (0, 5, 4), (1, 4, 5)]  # outward for the mirrored tetrahedron
    faces = np.array(_tetra(0) + second)
    assert trimesh.Trimesh(verts, faces, process=False).is_winding_consistent
    assert edge_counts(faces) == {"boundary": 0, "non_manifold": 1}
    v, f, st = make_manifold(verts, faces)
    tm = trimesh.Trimesh(v, f, process=False)
    assert st["flips"] == 1 and len(v) == 6 and len(f) == 8
    assert tm.is_watertight and tm.is_winding_consistent and edge_counts(f) == {"boundary": 0, "non_manifold": 0}
    assert tm.volume > 0


def test_vertex_clustering_fallback():
    from skimage.measure import marching_cubes

    from diffusion4d.recon.mesh_export import cluster_vertices

    x = np.linspace(-1, 1, 40)
    field = np.sqrt((x[:, None, None] ** 2 + x[None, :, None] ** 2 + x[None, None, :] ** 2))
    verts, faces, _, _ = marching_cubes(field, 0.7)
    v, f = cluster_vertices(verts, faces.astype(np.int64), 300)
    assert 150 <= len(v) <= 300 and f.max() < len(v) and len(f) > 200


def test_cli_export(exported, tmp_path, capsys):
    from diffusion4d.app import main

    _, out, _ = exported
    rc = main(["export", "--input", str(out), "--output", str(tmp_path / "cli.glb"), "--vertices", "800", "--grid", "32", "--no-viewer"])
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["vertices"] <= 840 and Path(line["glb"]).is_file() and line["viewer"] is None
    assert main(["export", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "x.glb")]) == 2
    assert main(["export", "--input", str(out), "--output", str(tmp_path / "x.obj")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("diffusion4d export: error:") for e in err)


def test_reconstruct_export_glb(exported, capsys):
    """`diffusion4d reconstruct --export glb` writes OUTPUT/model.glb after the fit (the coarse
    stage saved by the fixture's run is reused)."""
    from diffusion4d.app import main

    clip, out, _ = exported
    rc = main(["reconstruct", "--input", str(clip), "--output", str(out), "--preset", "test", "--backend", "torch",
               "--export", "glb", "output.videos=false", "output.ply=false", "coarse.iterations=80", "fine.iterations=10",
               "fine.rigid_knots=0", "fine.time_curriculum=0"])  # fmt: skip
    assert rc == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["export"]["glb"] == str(out / "model.glb") and (out / "model.glb").is_file()
