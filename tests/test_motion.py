import pytest
import torch

from diffusion4d.motion import (
    latent_motion_magnitude,
    motion_magnitude_reference,
    pixel_motion_magnitude,
)
from diffusion4d.ssim_rule import ssim, ssim_motion_rule


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(1, 3, 3, 4, 5), (3, 5, 4, 6, 2)])
def test_vectorised_equals_reference(shape, reduction):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    fast = pixel_motion_magnitude(a, b, reduction)
    slow = motion_magnitude_reference(a, b, reduction)
    assert torch.allclose(fast, slow, rtol=1e-5)


def test_hand_computed_value():
    static = torch.zeros(1, 2, 1, 1, 2)
    dyn = static.clone()
    dyn[0, 1, 0, 0, :] = torch.tensor([1.0, 2.0])  # frame 1 differs: ||d||^2 = 5
    assert pixel_motion_magnitude(dyn, static, "sum").item() == pytest.approx(2.5)
    assert pixel_motion_magnitude(dyn, static, "mean").item() == pytest.approx(1.25)
    assert pixel_motion_magnitude(static, static).item() == 0.0


def test_latent_form_uses_frame_axis_2():
    g = torch.Generator().manual_seed(2)
    z, zs = torch.randn(2, 4, 6, 3, 3, generator=g), torch.randn(2, 4, 6, 3, 3, generator=g)
    lat = latent_motion_magnitude(z, zs, "sum")
    pix = pixel_motion_magnitude(z.transpose(1, 2), zs.transpose(1, 2), "sum")
    assert torch.allclose(lat, pix)
    # resolution independence of the mean form
    big = pixel_motion_magnitude(torch.ones(1, 2, 3, 8, 8), torch.zeros(1, 2, 3, 8, 8))
    small = pixel_motion_magnitude(torch.ones(1, 2, 3, 2, 2), torch.zeros(1, 2, 3, 2, 2))
    assert big.item() == small.item() == 1.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        pixel_motion_magnitude(torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2, 3, 4, 5))


def test_gradient_flows_through_latent_form():
    z = torch.randn(1, 2, 3, 2, 2, requires_grad=True)
    latent_motion_magnitude(z, torch.zeros_like(z)).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def _moving_square(num_frames, speed, size=32):
    frames = torch.ones(num_frames, 3, size, size)
    for t in range(num_frames):
        x = 6 + int(speed * t)
        frames[t, :, 10:20, x : x + 10] = 0.0
    return frames


def test_ssim_rule_decisions():
    still = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1)
    r = ssim_motion_rule(still)
    assert r.decision == "too_static" and r.ssim_half == pytest.approx(1.0, abs=1e-5)
    moving = ssim_motion_rule(_moving_square(8, 0.5))
    assert moving.accepted, moving.reason
    g = torch.Generator().manual_seed(0)
    chaos = torch.rand(8, 3, 32, 32, generator=g)
    assert ssim_motion_rule(chaos).decision == "too_drastic"
    with pytest.raises(ValueError):
        ssim_motion_rule(still[:2])


def test_ssim_identical_is_one():
    x = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)


def test_spearman_of_one_swapped_pair_is_exactly_nine_tenths():
    """Five requested magnitudes, one adjacent pair measured in the wrong order: rho = 1 - 6*2/(5*24) = 0.9,
    which must meet a ">= 0.9" bar (scipy alone returns 0.8999999999999998)."""
    from diffusion4d.eval.motion_control import spearman

    rho, reason = spearman([0.0, 0.011, 0.022, 0.033, 0.045], [0.0, 0.0002, 0.0005, 0.0013, 0.0011])
    assert reason == "" and rho == 0.9 and rho >= 0.9
    assert spearman([0.0, 1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0, 0.0])[0] == -1.0
    assert spearman([0.0, 1.0], [0.0, 1.0]) == (None, "needs >= 3 distinct requested magnitudes, got 2")
