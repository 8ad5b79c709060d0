"""Blender imports the animated glTF export (recon/mesh_export.py) with its animation: a real
Blender subprocess (recon/blender_check.py), the morph targets as shape keys keyed over time, the
rigid motion as object animation, and the posed mesh where the project's own loader puts it.

Skipped when no Blender is installed (CI has none; Debian: apt-get install blender python3-numpy)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="no Blender installed")


def _loader_pose(glb, seconds: float) -> np.ndarray:
    """World (Z up) vertices of the export posed at ``seconds`` by the project's glTF loader."""
    from diffusion4d.data_curation.gltf import load_scene

    return load_scene(glb).evaluate(seconds)[0].positions


def _check(glb, report: dict, key_seconds, probe=(0, 3)) -> dict:
    """Import ``glb`` in Blender at two key times and check it against the export's report."""
    from diffusion4d.recon.blender_check import check_in_blender

    fps = 24.0  # Blender's default scene rate; checked below
    frames = [key_seconds[i] * fps for i in probe]
    got = check_in_blender(glb, timeout=180, frames=frames)
    assert got is not None
    assert got["fps"] == fps and got["frames"] == pytest.approx(frames)
    # what came in: one mesh with all vertices, one shape key per frame, keyed over the clip
    assert got["mesh_objects"] == 1 and got["vertices"] == report["vertices"] and got["faces"] == report["faces"]
    assert got["shape_keys"] == report["frames"] == report["morph_targets"]
    assert got["shape_key_animation"] and got["meshes"][0]["shape_key_fcurves"] == report["frames"]
    assert got["frame_range"] == pytest.approx([key_seconds[0] * fps, key_seconds[-1] * fps], abs=1e-3)
    assert got["color_attributes"] >= 1
    # the weights change with the frame: one-hot on the probed key frames
    a, b = (np.asarray(v) for v in got["shape_key_values"])
    assert np.allclose(a, np.eye(report["frames"])[probe[0]], atol=1e-4), a
    assert np.allclose(b, np.eye(report["frames"])[probe[1]], atol=1e-4), b
    # and the geometry moves, to where the project's loader poses it (Blender's world is Z up, front -Y, like
    # ours; measured: 1e-8 apart at key frames, and 0.1 s off is 7e-3 off)
    assert got["max_displacement"] > 0.01
    for f, centroid, (lo, hi) in zip(frames, got["centroids"], got["bounds"]):
        ours = _loader_pose(glb, f / fps)
        assert np.allclose(centroid, ours.mean(0), atol=1e-4), (f, centroid, ours.mean(0))
        assert np.allclose(lo, ours.min(0), atol=1e-4) and np.allclose(hi, ours.max(0), atol=1e-4), (f, lo, hi)
    return got


@needs_blender
@pytest.mark.slow
def test_blender_imports_a_reconstruction_export(tmp_path):
    """A procedural asset (a cone moving in a circle) curated to 24 px clips, reconstructed with
    a rigid motion (one knot per frame), exported, imported in Blender."""
    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.glb_roundtrip import write_procedural_clips
    from diffusion4d.recon.mesh_export import export_glb

    clip = write_procedural_clips(tmp_path, index=1, frames=6, size=24)
    out = tmp_path / "recon"
    reconstruct(clip, out, preset="test", backend="torch", overrides=[
        "output.videos=false", "output.ply=false", "coarse.iterations=80", "fine.iterations=10",
        "fine.rigid_knots=-1", "fine.time_curriculum=0"])  # fmt: skip
    report = export_glb(out, out / "model.glb", vertices=3000, grid=48)
    assert report["frames"] == 6 and report["rigid_animation"]
    got = _check(out / "model.glb", report, report["key_seconds"])
    assert got["object_animation"]
    assert got["meshes"][0]["object_channels"] == ["location", "rotation_quaternion"]


@needs_blender
def test_blender_imports_known_motion(tmp_path):
    """The known model of test_export_glb (local offsets + a rigid spin), no fit needed."""
    from test_export_glb import _known_model

    from diffusion4d.recon.mesh_export import export_glb

    model, field, _ = _known_model()
    report = export_glb((model, field, np.linspace(0, 1, 7), 3.0), tmp_path / "k.glb", vertices=2000, grid=40,
                        colour="kernel")
    got = _check(tmp_path / "k.glb", report, report["key_seconds"], probe=(1, 5))
    assert got["object_animation"] and got["meshes"][0]["object_channels"] == ["location", "rotation_quaternion"]


def test_no_blender_gives_none(tmp_path, monkeypatch):
    import diffusion4d.blender
    from diffusion4d.recon import blender_check

    glb = tmp_path / "x.glb"
    glb.write_bytes(b"glTF")
    monkeypatch.setattr(diffusion4d.blender.shutil, "which", lambda name: None)
    assert blender_check.check_in_blender(glb) is None
    assert blender_check.main([str(glb)]) == 2
    with pytest.raises(FileNotFoundError):
        blender_check.check_in_blender(tmp_path / "missing.glb")
    with pytest.raises(FileNotFoundError, match="no Blender executable"):
        blender_check.check_in_blender(glb, blender=str(tmp_path / "nowhere"))
