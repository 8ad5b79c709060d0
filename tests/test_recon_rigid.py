"""The rigid part of the deformation: quaternion helpers, knot interpolation and extrapolation,
composition in ``deform``, the time curriculum, and tracking a known rotation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion4d.recon.deformation import HexPlaneDeformation, RigidMotion, apply_rigid, axis_angle_to_quat, deform, quat_multiply
from diffusion4d.recon.fit import Views, curriculum_size, make_deformation, render_gaussians, track_rigid_knot
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.projection import quat_to_rotmat
from diffusion4d.recon.recon_config import load_recon_config


def _rodrigues(v: np.ndarray) -> np.ndarray:
    """Reference: rotation matrix of a rotation vector (Rodrigues' formula, float64)."""
    angle = np.linalg.norm(v)
    if angle == 0:
        return np.eye(3)
    k = v / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def test_axis_angle_and_quat_multiply_match_matrices():
    g = torch.Generator().manual_seed(0)
    vs = torch.randn(6, 3, generator=g, dtype=torch.float64) * 2.5  # angles beyond pi included
    vs[0] = 0.0
    vs[1] = torch.tensor([1e-6, 0.0, 0.0])
    q = axis_angle_to_quat(vs)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(6, dtype=torch.float64))
    for v, qi in zip(vs, q):
        np.testing.assert_allclose(quat_to_rotmat(qi).numpy(), _rodrigues(v.numpy()), atol=1e-10)
    # R(a * b) == R(a) R(b)
    a, b = q[2], q[3]
    torch.testing.assert_close(quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b))
    # smooth at zero: the gradient of the quaternion at v = 0 is finite (0.5 * I for the vector part)
    v0 = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_quat(v0)[1].backward()
    torch.testing.assert_close(v0.grad, torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))


def test_rigid_knots_interpolate_extrapolate_and_smoothness():
    rigid = RigidMotion(5)  # knots at t = 0, .25, .5, .75, 1
    q, trans = rigid(0.6)
    torch.testing.assert_close(q, torch.tensor([1.0, 0, 0, 0]))
    assert trans.abs().max() == 0
    with torch.no_grad():
        rigid.rotvecs[0] = torch.tensor([0.0, 0.0, 0.3])  # knot 1
        rigid.translations[0] = torch.tensor([0.1, 0.0, 0.0])
    rigid.fitted.fill_(2)
    rigid.extrapolate(4)  # constant velocity from knots 0 and 1
    rot, tr = rigid.knot_values()
    torch.testing.assert_close(rot[:, 2], torch.tensor([0.0, 0.3, 0.6, 0.9, 1.2]))
    torch.testing.assert_close(tr[:, 0], torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4]))
    assert int(rigid.fitted) == 5 and float(rigid.acceleration().detach()) < 1e-12  # constant velocity: no acceleration
    q, trans = rigid(0.625)  # halfway between knots 2 and 3
    torch.testing.assert_close(q, axis_angle_to_quat(torch.tensor([0.0, 0.0, 0.75])))
    torch.testing.assert_close(trans, torch.tensor([0.25, 0.0, 0.0]))
    assert rigid.knot_index_after(0.5) == 2 and rigid.knot_index_after(0.51) == 3 and rigid.knot_index_after(1.0) == 4
    with torch.no_grad():
        rigid.rotvecs[2, 2] = 0.0
    assert float(rigid.acceleration().detach()) > 0
    with pytest.raises(ValueError, match="at least 2"):
        RigidMotion(1)


def test_knots_between_tracked_ones_are_interpolated():
    """A held-out frame's knot (2) is left by extrapolation where knots 0 and 1 pointed; once knot
    3 is tracked somewhere else, knot 2 moves onto the line between knots 1 and 3."""
    rigid = RigidMotion(5)
    with torch.no_grad():
        rigid.rotvecs[0] = torch.tensor([0.0, 0.0, 0.3])
        rigid.translations[0] = torch.tensor([0.1, 0.0, 0.0])
    rigid.fitted.fill_(2)
    rigid.extrapolate(3)  # knot 2 guessed at 0.6, knot 3 at 0.9
    with torch.no_grad():  # tracking found knot 3 at 0.5 rad, translation 0.1
        rigid.rotvecs[2] = torch.tensor([0.0, 0.0, 0.5])
        rigid.translations[2] = torch.tensor([0.1, 0.0, 0.0])
    rigid.interpolate(1, 3)
    rot, tr = rigid.knot_values()
    torch.testing.assert_close(rot[:4, 2], torch.tensor([0.0, 0.3, 0.4, 0.5]))
    torch.testing.assert_close(tr[:4, 0], torch.tensor([0.0, 0.1, 0.1, 0.1]))
    rigid.interpolate(3, 4)  # nothing in between: a no-op
    torch.testing.assert_close(rigid.knot_values()[0][:4, 2], torch.tensor([0.0, 0.3, 0.4, 0.5]))


def test_deform_applies_local_offsets_then_rigid_motion():
    field = HexPlaneDeformation(resolutions=[4], time_resolution=3, features=2, hidden=4, colour=True, rigid_knots=3)
    g = GaussianModel.random(20, sh_degree=1).activated()
    out = deform(g, field, 0.3)  # everything starts at identity
    for key in ("means", "sh", "scales"):
        torch.testing.assert_close(out[key], g[key])
    with torch.no_grad():
        field.rigid.rotvecs[:] = torch.tensor([[0.0, 0.0, 0.4], [0.0, 0.0, 0.8]])
        field.rigid.translations[:] = torch.tensor([[0.0, 0.1, 0.0], [0.0, 0.2, 0.0]])
        field.rigid.centre.copy_(torch.tensor([0.1, 0.0, 0.0]))
        field.heads["means"].bias.copy_(torch.tensor([0.05, 0.0, 0.0]))
        field.heads["colour"].bias.copy_(torch.tensor([0.1, -0.1, 0.0]))
    out = deform(g, field, 0.5)  # knot 1
    R = quat_to_rotmat(axis_angle_to_quat(torch.tensor([0.0, 0.0, 0.4])))
    c = torch.tensor([0.1, 0.0, 0.0])
    expected = (g["means"] + torch.tensor([0.05, 0.0, 0.0]) - c) @ R.T + c + torch.tensor([0.0, 0.1, 0.0])
    torch.testing.assert_close(out["means"], expected)
    torch.testing.assert_close(quat_to_rotmat(out["quats"]), R @ quat_to_rotmat(g["quats"]))
    torch.testing.assert_close(out["sh"][:, 0], g["sh"][:, 0] + torch.tensor([0.1, -0.1, 0.0]))
    torch.testing.assert_close(out["sh"][:, 1:], g["sh"][:, 1:])


def test_rigid_motion_equals_moving_the_camera():
    """Rendering the rigidly moved Gaussians == rendering the canonical ones from the inversely moved camera."""
    from diffusion4d.recon.rasterize import rasterize

    g = GaussianModel.random(60, sh_degree=0, init_opacity=0.8).activated()
    rigid = RigidMotion(2)
    with torch.no_grad():
        rigid.rotvecs[0] = torch.tensor([0.2, -0.1, 0.7])
        rigid.translations[0] = torch.tensor([0.05, 0.02, -0.03])
    moved = apply_rigid(g, rigid, 1.0)
    q, trans = rigid(1.0)
    M = torch.eye(4)
    M[:3, :3] = quat_to_rotmat(q)
    M[:3, 3] = trans  # centre 0: x' = R x + T
    viewmat = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
    K = torch.tensor([[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]])
    args = dict(width=32, height=32, backend="torch", sh_degree=0)
    a, _, _ = rasterize(moved["means"], moved["quats"], moved["scales"], moved["opacities"], moved["sh"], viewmat[None], K[None], **args)
    b, _, _ = rasterize(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], (viewmat @ M)[None], K[None], **args)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_curriculum_size():
    assert [curriculum_size(s, 4, 10, 0.0) for s in (0, 9)] == [4, 4]
    sizes = [curriculum_size(s, 4, 10, 0.5) for s in range(10)]
    assert sizes[0] == 1 and sizes == sorted(sizes) and sizes[4] == 4 and sizes[-1] == 4


def test_config_validation_and_auto_knots():
    cfg = load_recon_config("test", ["fine.rigid_knots=-1"])
    assert make_deformation(cfg, 24).rigid.knots == 24
    assert make_deformation(load_recon_config("test", ["fine.rigid_knots=0"]), 24).rigid is None
    from diffusion4d.config import ConfigError

    for bad in ("fine.rigid_knots=1", "fine.rigid_knots=-2", "fine.time_curriculum=1.0"):
        with pytest.raises((ConfigError, ValueError), match="rigid_knots|time_curriculum"):
            load_recon_config("test", [bad])


def test_tracking_recovers_a_rotation_beyond_the_gradient_basin():
    """A 25 degree turn about Z of a textured blob, from one view: search + pyramid find it."""
    from diffusion4d.recon.testing import synthetic_scene

    torch.manual_seed(0)
    s = synthetic_scene(300, seed=1)
    from diffusion4d.recon.sh import rgb_to_sh0

    model = GaussianModel(
        {
            "means": s["means"],
            "quats": s["quats"],
            "scales": torch.log(s["scales"] * 2),
            "opacities": torch.logit(s["opacities"].clamp(1e-3, 1 - 1e-3)),
            "sh0": rgb_to_sh0(s["colors"])[:, None],
            "shN": torch.zeros(300, 0, 3),
        },
        sh_degree=0,
    )
    cfg = load_recon_config("test", ["backend=torch", "fine.rigid_knots=2", "fine.track_steps=15", "fine.track_levels=2"])
    field = make_deformation(cfg, 2)
    truth = RigidMotion(2)
    with torch.no_grad():
        truth.rotvecs[0] = torch.tensor([0.0, 0.0, math.radians(25.0)])
    viewmat = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0.0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    frame = Views(torch.zeros(1, 32, 32, 3), viewmat[None], K[None], torch.tensor([1.0]), 32, 32)
    with torch.no_grad():
        target, _, _ = render_gaussians(apply_rigid(model.activated(), truth, 1.0), frame, [0], cfg, 0)
    frame.images = target
    field.rigid.fitted.fill_(2)
    loss = track_rigid_knot(model, field, frame, cfg)
    angle = math.degrees(float(field.rigid.rotvecs[0, 2].detach()))
    assert abs(angle - 25.0) < 2.0, angle
    assert loss < 0.02


def test_downsampled_views_render_like_pooled_full_resolution_renders():
    """Rendering at half size with scaled intrinsics (the rigid trial's frames) approximates
    area-pooling a full render."""
    from diffusion4d.recon.testing import synthetic_scene

    s = synthetic_scene(200, seed=3)
    g = {"means": s["means"], "quats": s["quats"], "scales": s["scales"] * 2, "opacities": s["opacities"], "sh": s["colors"][:, None] / 0.28209479177387814 - 0.5 / 0.28209479177387814}
    cfg = load_recon_config("test", ["backend=torch"])
    viewmat = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0.0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    full = Views(torch.zeros(1, 32, 32, 3), viewmat[None], K[None], torch.tensor([0.0]), 32, 32)
    half = full.downsampled(2)
    assert (half.width, half.height) == (16, 16) and half.images.shape == (1, 16, 16, 3)
    assert torch.allclose(half.Ks[0, :2, :3], K[:2, :3] / 2)
    with torch.no_grad():
        big, _, _ = render_gaussians(g, full, [0], cfg, 0)
        small, _, _ = render_gaussians(g, half, [0], cfg, 0)
    pooled = torch.nn.functional.avg_pool2d(big.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    err = float((small - pooled).abs().mean())
    print("downsampled render vs pooled: %.4f, signal %.4f" % (err, float((pooled - 1).abs().mean())))
    assert err < 0.25 * float((pooled - 1).abs().mean())  # small next to the image's content
    assert full.downsampled(1) is full


def test_remove_rigid_component_keeps_only_the_non_rigid_part():
    """A small rigid motion of the points disappears; a radial expansion about the centroid (no
    net translation or rotation) is kept; the result has zero weighted mean and no net rotation."""
    from diffusion4d.recon.deformation import remove_rigid_component

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    w = torch.rand(200, generator=g, dtype=torch.float64)
    c = (w[:, None] * x).sum(0) / w.sum()
    v, omega = torch.tensor([0.1, -0.2, 0.05], dtype=torch.float64), torch.tensor([0.02, 0.01, -0.03], dtype=torch.float64)
    rigid = v + torch.linalg.cross(omega.expand_as(x), x - c)
    torch.testing.assert_close(remove_rigid_component(rigid, x, w), torch.zeros_like(x), atol=1e-6, rtol=0)  # eps-regularised solve
    radial = 0.1 * (x - c)
    torch.testing.assert_close(remove_rigid_component(radial, x, w), radial, atol=1e-6, rtol=0)
    mixed = remove_rigid_component(radial + rigid + 0.05 * torch.randn(200, 3, generator=g, dtype=torch.float64), x, w)
    torch.testing.assert_close((w[:, None] * mixed).sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close((w[:, None] * torch.linalg.cross(x - c, mixed)).sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-4, rtol=0)


def test_rigid_free_offsets_only_with_rigid_knots_and_stored_in_the_config():
    plain = HexPlaneDeformation(resolutions=[4], time_resolution=3, features=2, hidden=4, rigid_free_offsets=True)
    assert not plain.rigid_free_offsets  # no knots: the offsets must carry every motion
    field = HexPlaneDeformation(resolutions=[4], time_resolution=3, features=2, hidden=4, rigid_knots=3, rigid_free_offsets=True)
    assert field.rigid_free_offsets and HexPlaneDeformation(**field.config).rigid_free_offsets
    assert not HexPlaneDeformation(**{k: v for k, v in field.config.items() if k != "rigid_free_offsets"}).rigid_free_offsets
