"""PSNR / SSIM against direct formulas; LPIPS plumbing with a random backbone; weight lookup."""

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from diffusion4d import weights as W
from diffusion4d.metrics import match_size, psnr_per_frame, ssim_per_frame, to_tensor
from diffusion4d.eval.testing import write_random_lpips_backbone


def _psnr_direct(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _ssim_direct(a: np.ndarray, b: np.ndarray, k1=0.01, k2=0.03, size=11, sigma=1.5) -> float:
    """Wang et al. 2004, 11x11 Gaussian window, map over the whole image (reflection padding,
    as torchmetrics), mean over pixels and channels. ``a``, ``b``: [C, H, W]."""
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = k1**2, k2**2
    maps = []
    pad = size // 2
    for x, y in zip(a.astype(np.float64), b.astype(np.float64)):
        x, y = np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect")
        f = lambda z: correlate2d(z, w, mode="valid")  # noqa: E731
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return float(np.mean(maps))


def test_psnr_matches_formula_and_identical_is_inf():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 3, 16, 16)).astype(np.float32)
    b = np.clip(a + rng.normal(scale=0.1, size=a.shape), 0, 1).astype(np.float32)
    got = psnr_per_frame(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, [_psnr_direct(x, y) for x, y in zip(a, b)], rtol=1e-5)
    assert torch.isinf(psnr_per_frame(torch.from_numpy(a), torch.from_numpy(a))).all()
    # a constant error d gives 10 log10(1 / d^2)
    const = psnr_per_frame(torch.full((1, 3, 8, 8), 0.5), torch.full((1, 3, 8, 8), 0.6))
    assert float(const) == pytest.approx(20.0, abs=1e-3)


def test_ssim_matches_formula_and_identical_is_one():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(2, 3, 24, 24)).astype(np.float32)
    b = np.clip(a * 0.7 + 0.2 + rng.normal(scale=0.05, size=a.shape), 0, 1).astype(np.float32)
    got = ssim_per_frame(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, [_ssim_direct(x, y) for x, y in zip(a, b)], rtol=1e-4, atol=1e-5)
    assert ssim_per_frame(torch.from_numpy(a), torch.from_numpy(a)).numpy() == pytest.approx([1.0, 1.0], abs=1e-6)
    # two constant images m1, m2: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)
    m1, m2, c1 = 0.3, 0.5, 0.01**2
    const = ssim_per_frame(torch.full((1, 3, 16, 16), m1), torch.full((1, 3, 16, 16), m2))
    assert float(const) == pytest.approx((2 * m1 * m2 + c1) / (m1**2 + m2**2 + c1), rel=1e-4)


def test_match_size_and_white_background_input():
    from diffusion4d.io import frames_to_float

    rgba = np.zeros((1, 4, 4, 4), np.uint8)  # fully transparent -> white
    x = to_tensor(frames_to_float(rgba))
    assert x.shape == (1, 3, 4, 4) and torch.all(x == 1.0)
    assert match_size(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4)).shape == (2, 3, 4, 4)


def test_lpips_plumbing_with_a_random_backbone(tmp_path, monkeypatch):
    from diffusion4d.metrics import build_lpips, lpips_per_frame

    monkeypatch.delenv(W.ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = tmp_path / "weights"
    weights.mkdir()
    missing = W.resolve_lpips_backbone("alex", weights)
    assert isinstance(missing, W.MissingWeights)
    assert "alexnet-owt-7be5be79.pth" in missing.line() and "download.pytorch.org" in missing.line()

    write_random_lpips_backbone(weights / "alexnet-owt-7be5be79.pth")
    path = W.resolve_lpips_backbone("alex", weights)
    assert path == weights / "alexnet-owt-7be5be79.pth"
    model = build_lpips(path, "alex")
    assert torch.equal(model.net.slice2._modules["3"].weight, torch.load(path)["features.3.weight"])
    a = torch.rand(2, 3, 32, 32)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    same = lpips_per_frame(model, a, a)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2), atol=1e-6)
    assert (lpips_per_frame(model, a, b) > 0).all()


def test_lpips_rejects_a_wrong_checkpoint(tmp_path):
    from diffusion4d.metrics import build_lpips

    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="features.0.weight"):
        build_lpips(tmp_path / "bad.pth", "alex")


def test_weight_search_order(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "sub").mkdir(parents=True)
    second.mkdir()
    (second / "i3d_pretrained_400.pt").write_bytes(b"x")
    monkeypatch.setenv(W.ENV_VAR, str(second))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert W.resolve_i3d(first) == second / "i3d_pretrained_400.pt"
    (first / "sub" / "i3d_torchscript.pt").write_bytes(b"x")  # one level down in --weights-dir wins
    assert W.resolve_i3d(first) == first / "sub" / "i3d_torchscript.pt"
    monkeypatch.delenv(W.ENV_VAR)
    miss = W.resolve_i3d(tmp_path / "nothing")
    assert isinstance(miss, W.MissingWeights) and "i3d_torchscript.pt" in miss.line() and "\n" not in miss.line()


def test_silhouette_iou_against_a_hand_count():
    from diffusion4d.metrics import SILHOUETTE_THRESHOLD, silhouette_iou

    white = torch.ones(2, 3, 4, 4)
    a, b = white.clone(), white.clone()
    a[0, :, :2, :2] = 0.2  # 4 object pixels
    b[0, :, 1:3, 1:3] = 0.2  # 4 object pixels, 1 shared
    a[1, :, 0, 0] = 1.0 - SILHOUETTE_THRESHOLD / 2  # below the threshold: background
    iou = silhouette_iou(a, b)
    assert iou[0].item() == pytest.approx(1 / 7) and iou[1].item() == 1.0  # both empty -> 1


def test_view_iou_gain_against_a_hand_count():
    """An orbit alternating a square (even frames) and a wide bar (odd frames): a copy scores the orbit's own
    variation, one silhouette in every frame exactly 0, the copy one view late the negative of the copy."""
    from diffusion4d.metrics import view_iou_gain

    orbit = torch.ones(4, 3, 8, 8)
    orbit[0::2, :, 2:6, 2:6] = 0.0  # 4x4 square
    orbit[1::2, :, 3:5, 0:8] = 0.0  # 2x8 bar; square & bar = 2x4 = 8 px, union 16 + 16 - 8 = 24 px
    cross = 8 / 24
    # a copy: IoU 1 with the same frame; the other frames are the other shape (rolls 1, 3) or the same (roll 2)
    assert view_iou_gain(orbit, orbit) == pytest.approx(1 - (cross + 1 + cross) / 3)
    blind = orbit[:1].expand(4, -1, -1, -1).clone()  # the square in every view
    assert view_iou_gain(blind, orbit) == pytest.approx(0.0, abs=1e-7)
    late = torch.roll(orbit, 1, 0)
    assert view_iou_gain(late, orbit) == pytest.approx(-view_iou_gain(orbit, orbit))


def test_the_curation_rule_uses_the_same_ssim():
    from diffusion4d.ssim_rule import ssim

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    assert torch.equal(ssim(a, b), ssim_per_frame(a, b))
