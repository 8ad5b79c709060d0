"""End to end: reconstruct a synthetic Gaussian asset (library + CLI), re-read every export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffusion4d.io import read_clip
from diffusion4d.recon.deformation import HexPlaneDeformation, arap_loss, deform, knn_graph
from diffusion4d.recon.export import ply_fields, read_ply, write_ply
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.pipeline import holdout_indices
from diffusion4d.recon.recon_config import load_recon_config, preset_names
from diffusion4d.recon.testing import write_synthetic_asset


@pytest.fixture(scope="module")
def asset(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    return write_synthetic_asset(root, frames=8, size=24, num=120)


def test_reconstruct_orbit_end_to_end(asset, tmp_path):
    from plyfile import PlyData

    from diffusion4d.app import main
    from diffusion4d.recon.export import load_4d

    out = tmp_path / "out"
    rc = main(["reconstruct", "--input", str(asset), "--output", str(out), "--preset", "test", "--backend", "torch", "--holdout", "4"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heldout_frames"] == [2, 6] and metrics["psnr_heldout"] > 5.0
    assert metrics["static_clip"].endswith("static")
    for name in ("turntable.mp4", "over_time.mp4", "orbit.mp4", "recon_config.yaml", "gaussians_4d.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    clip = read_clip(out / "dynamic")
    assert clip.frames.shape == (8, 24, 24, 4)
    np.testing.assert_allclose(clip.cameras.c2w, read_clip(asset).cameras.c2w)
    plys = sorted((out / "ply").glob("*.ply"))
    assert len(plys) == 8
    ply = PlyData.read(str(plys[0]))
    names = [p.name for p in ply["vertex"].properties]
    assert names == ply_fields(3)  # sh_degree 1: 3 rest coefficients per channel
    assert len(ply["vertex"]) == metrics["num_gaussians"]
    model, field, info = load_4d(out)
    assert len(model) == metrics["num_gaussians"] and field is not None and info["mode"] == "orbit"
    # PLY at time i == the 4D file's Gaussians deformed to time i
    with torch.no_grad():
        gi = deform(model.activated(), field, info["times"][5])
    raw = read_ply(out / "ply" / "005.ply")
    torch.testing.assert_close(raw["means"], gi["means"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(raw["sh0"], gi["sh"][:, :1], rtol=1e-5, atol=1e-5)  # the colour head's change is exported
    assert field.rigid is not None and info["deformation"]["config"]["rigid_knots"] == 8  # test preset: a knot per frame
    assert int(field.rigid.fitted) == 8


@pytest.mark.slow
def test_reconstruct_freeze_time(asset, tmp_path):
    from diffusion4d.recon import reconstruct

    out = tmp_path / "ft"
    metrics = reconstruct(asset, out, preset="test", backend="torch", mode="freeze_time",
                          overrides=["output.videos=false", "output.ply=false"])  # fmt: skip
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["mode"] == "freeze_time" and metrics["temporal_source"] == "front"
    assert metrics["psnr_train"] > 5.0 and not (out / "orbit.mp4").exists()


def test_reconstruct_starting_from_the_visual_hull(asset, tmp_path):
    """``init.mode=visual_hull`` through the library: the coarse stage starts from points carved by
    the static orbit's silhouettes (the asset's static sibling plus frame 0), and the fit completes."""
    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.export import load_4d

    out = tmp_path / "hull"
    metrics = reconstruct(asset, out, preset="test", backend="torch", holdout=4,
                          overrides=["init.mode=visual_hull", "output.videos=false", "output.ply=false"])  # fmt: skip
    assert load_recon_config(out / "recon_config.yaml").init.mode == "visual_hull"
    assert metrics["psnr_heldout"] > 5.0
    model, _, _ = load_4d(out)
    assert float(model.means.detach().abs().max()) <= 0.5 + 0.2  # started in the box's hull, moved a little


def test_cli_bad_input_exits_2(tmp_path, capsys):
    from diffusion4d.app import main

    assert main(["reconstruct", "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "not a clip folder" in capsys.readouterr().err


def test_ply_round_trip(tmp_path):
    model = GaussianModel.random(20, sh_degree=2)
    with torch.no_grad():
        model.params["shN"].normal_()
    write_ply(tmp_path / "a.ply", model.raw())
    back = read_ply(tmp_path / "a.ply")
    raw = model.raw()
    raw["quats"] = torch.nn.functional.normalize(raw["quats"], dim=-1)
    for k in raw:
        torch.testing.assert_close(back[k], raw[k])


def test_presets_load_and_holdout():
    assert {"paper", "default", "demo", "test"} <= set(preset_names())
    paper = load_recon_config("paper")
    assert paper.coarse.iterations == 5000 and paper.fine.iterations == 2000 and paper.resolution == 256
    assert load_recon_config("demo").init.sh_degree == 0
    with pytest.raises(ValueError, match="valid presets"):
        load_recon_config("nope")
    assert holdout_indices(12, 4) == [2, 6, 10] and holdout_indices(5, 0) == []
    assert holdout_indices(24, 4) == [2, 6, 10, 14, 18, 22] and holdout_indices(8, 2) == [1, 3, 5]  # never frame 0 or the last


def test_deformation_starts_at_identity_and_arap():
    field = HexPlaneDeformation(resolutions=[8], time_resolution=4, features=4, hidden=8)
    g = GaussianModel.random(30).activated()
    out = deform(g, field, 0.7)
    torch.testing.assert_close(out["means"], g["means"])
    assert field.total_variation() > 0
    nb = knn_graph(g["means"].detach(), 4)
    assert arap_loss(g["means"], g["means"] * 1.0, nb) == 0
    assert arap_loss(g["means"], g["means"] * 1.5, nb) > 0
    out["means"].sum().backward()  # gradients reach the heads
    assert field.heads["means"].bias.grad is not None


def test_adam_matches_torch_adam():
    from diffusion4d.recon.optim import Adam

    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=g).requires_grad_(True)
    b = a.detach().clone().requires_grad_(True)
    ours, ref = Adam([a], lr=0.05, eps=1e-15), torch.optim.Adam([b], lr=0.05, eps=1e-15)
    for step in range(6):
        for p, opt in ((a, ours), (b, ref)):
            (p.sin() * (step + 1)).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert set(ours.state[a]) == {"step", "exp_avg", "exp_avg_sq"}
