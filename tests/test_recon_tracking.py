"""Tracking a new rigid knot, and the fitting loops, when no Gaussian is visible in a view.

A real morph-target asset crashed the ``default`` preset's fine stage in ``track_rigid_knot``
(``loss.backward()``: "element 0 of tensors does not require grad"): when no Gaussian projects
into the newest frame's view, the torch rasteriser returns the constant background, so the
tracking loss has no graph. Tracking must keep the constant-velocity guess and carry on.
"""

from __future__ import annotations

import logging

import torch

from diffusion4d.recon.fit import Views, fit_deformation, fit_static, make_deformation, render_gaussians, track_rigid_knot
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.recon_config import load_recon_config

#: a camera 2 units from the origin looking at it (OpenCV axes), and one looking away from it
LOOK_AT_ORIGIN = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
LOOK_AWAY = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, -2.0], [0, 0, 0, 1]])  # at y=+2 facing +y: all behind it
K = torch.tensor([[30.0, 0, 12], [0, 30.0, 12], [0, 0, 1]])


def _cfg(*extra):
    return load_recon_config("test", ["backend=torch", "fine.track_steps=3", "fine.track_levels=2", *extra])


def _model(n=60):
    return GaussianModel.random(n, sh_degree=1, init_opacity=0.8, generator=torch.Generator().manual_seed(0))


def _views(viewmats, times):
    n = len(times)
    return Views(torch.ones(n, 24, 24, 3), viewmats, K.expand(n, 3, 3).clone(), torch.tensor(times), 24, 24)


def _prepared_field(cfg, knots=4):
    field = make_deformation(cfg, knots)
    with torch.no_grad():  # knot 1 fitted at 0.1 rad about z: the constant-velocity guess for knot 2 is 0.2
        field.rigid.rotvecs[0] = torch.tensor([0.0, 0.0, 0.1])
        field.rigid.translations[0] = torch.tensor([0.01, 0.0, 0.0])
    field.rigid.fitted.fill_(2)
    field.rigid.extrapolate(2)
    return field


def test_nothing_visible_in_the_view_really_is_a_constant_image():
    cfg = _cfg()
    g = _model().activated()
    img, _, info = render_gaussians(g, _views(LOOK_AWAY[None], [0.5]), [0], cfg, 1)
    assert int((info["radii"] > 0).sum()) == 0 and not img.requires_grad
    assert torch.allclose(img, torch.ones_like(img))  # the background only


def test_tracking_a_view_with_nothing_visible_keeps_the_constant_velocity_guess(caplog):
    cfg = _cfg()
    model, field = _model(), _prepared_field(cfg)
    guess_rot, guess_tr = field.rigid.rotvecs.detach().clone(), field.rigid.translations.detach().clone()
    frame = _views(LOOK_AWAY[None], [2.0 / 3.0])  # knot 2 of 4
    with caplog.at_level(logging.WARNING, logger="diffusion4d.recon.fit"):
        loss = track_rigid_knot(model, field, frame, cfg)  # crashed: element 0 of tensors does not require grad
    assert loss != loss  # nan: nothing was fitted
    torch.testing.assert_close(field.rigid.rotvecs.detach(), guess_rot)
    torch.testing.assert_close(field.rigid.translations.detach(), guess_tr)
    assert abs(float(field.rigid.rotvecs.detach()[1, 2]) - 0.2) < 1e-6
    assert any("no Gaussian is visible" in r.getMessage() for r in caplog.records)


def test_tracking_with_no_gaussians_left():
    cfg = _cfg()
    model = GaussianModel.random(1, sh_degree=1, generator=torch.Generator().manual_seed(0))
    model = GaussianModel({k: v.detach()[:0] for k, v in model.params.items()}, sh_degree=1)
    field = _prepared_field(cfg)
    assert track_rigid_knot(model, field, _views(LOOK_AT_ORIGIN[None], [2.0 / 3.0]), cfg) != 0.0


def test_tracking_non_finite_gaussians_is_an_error_not_a_silent_skip():
    import pytest

    cfg = _cfg()
    model, field = _model(), _prepared_field(cfg)
    with torch.no_grad():
        model.params["means"][:] = float("nan")  # a diverged fit: every Gaussian is culled, so nothing is visible
    with pytest.raises(FloatingPointError, match="non-finite Gaussians"):
        track_rigid_knot(model, field, _views(LOOK_AT_ORIGIN[None], [2.0 / 3.0]), cfg)


def test_fine_stage_with_a_view_where_nothing_is_visible_completes():
    """The fine stage's time curriculum tracks every frame; one of them sees nothing."""
    cfg = _cfg("fine.iterations=6", "fine.tv_weight=0", "fine.rigid_smoothness=0")
    model = _model()
    field = make_deformation(cfg, 3)
    views = _views(torch.stack([LOOK_AT_ORIGIN, LOOK_AWAY, LOOK_AWAY]), [0.0, 0.5, 1.0])
    fit_deformation(model, field, views, cfg, cfg.fine.iterations)
    assert int(field.rigid.fitted) == 3
    assert all(torch.isfinite(p).all() for p in field.parameters())


def test_coarse_stage_with_a_view_where_nothing_is_visible_completes():
    cfg = _cfg("coarse.batch_views=1", "coarse.densify.enabled=false")
    model = _model()
    views = _views(torch.stack([LOOK_AWAY, LOOK_AWAY]), [0.0, 0.0])
    before = model.means.detach().clone()
    fit_static(model, views, cfg, 3, cfg.coarse.densify)
    torch.testing.assert_close(model.means.detach(), before)  # no gradient: nothing moved


def test_steps_with_non_finite_gradients_are_detected():
    import torch

    from diffusion4d.recon.fit import grads_finite
    from diffusion4d.recon.optim import Adam

    p = torch.nn.Parameter(torch.zeros(3))
    opt = Adam([{"params": [p], "lr": 0.1}])
    p.grad = torch.tensor([0.0, 1.0, 2.0])
    assert grads_finite([opt])
    p.grad = torch.tensor([0.0, float("nan"), 2.0])
    assert not grads_finite([opt])
    p.grad = None
    assert grads_finite([opt])


def test_rigid_trial_changes_neither_the_model_nor_the_random_state(tmp_path):
    """The trial fits copies, on the earliest training frames split alternately (fitted / scored)."""
    from diffusion4d.recon.fit import load_views, rigid_trial
    from diffusion4d.recon.testing import write_synthetic_asset

    clip = write_synthetic_asset(tmp_path, frames=8, size=24, num=80)
    cfg = _cfg("fine.rigid_trial_steps=3", "fine.rigid_trial_frames=0.75", "fine.rigid_trial_downsample=1")
    views = load_views(clip, cfg.resolution, cfg.background, torch.device("cpu"))
    model = _model(80)
    before = {k: v.detach().clone() for k, v in model.params.items()}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    result = rigid_trial(model, views, cfg, len(views))
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in model.params.items():
        assert torch.equal(v.detach(), before[k]), k
    assert (result["fitted"], result["scored"], result["steps"]) == (3, 3, 3)  # 6 earliest of 8: 0 2 4 fitted, 1 3 5 scored
    assert result["used"] == (result["local"] > result["rigid"] * 0.8)  # dropped only on a clear loss


def test_reconstruct_records_the_rigid_trial_and_follows_it(tmp_path):
    import json

    from diffusion4d.recon import reconstruct
    from diffusion4d.recon.export import load_4d
    from diffusion4d.recon.testing import write_synthetic_asset

    clip = write_synthetic_asset(tmp_path / "assets", frames=8, size=24, num=80)
    reconstruct(clip, tmp_path / "out", preset="test", holdout=4, overrides=["backend=torch", "fine.rigid_trial_steps=2"])
    trial = json.loads((tmp_path / "out" / "metrics.json").read_text())["rigid_trial"]
    assert set(trial) == {"rigid", "local", "fitted", "scored", "steps", "used"} and trial["steps"] == 2
    _, field, info = load_4d(tmp_path / "out")
    assert (field.rigid is not None) == trial["used"]
    assert (info["deformation"]["config"]["rigid_knots"] > 0) == trial["used"]
