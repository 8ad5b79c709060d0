"""FVD: Frechet distance vs scipy's sqrtm reference, clip sampling, I3D layout, the full pipeline."""

import numpy as np
import pytest
import torch

from diffusion4d.eval.fvd_metric import (
    clip_indices,
    frechet_distance,
    frechet_distance_reference,
    fvd_from_features,
    gaussian_stats,
    load_detector,
    preprocess,
)
from diffusion4d.eval.i3d_model import InceptionI3d
from diffusion4d.eval.testing import write_tiny_i3d


@pytest.mark.parametrize("n1,n2,dim,shift", [(200, 150, 8, 0.0), (300, 300, 16, 0.7), (50, 80, 4, 3.0)])
def test_frechet_distance_matches_scipy_sqrtm(n1, n2, dim, shift):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n1, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(size=(n2, dim)) * rng.uniform(0.5, 2.0, size=dim) + shift
    fast = frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    ref = frechet_distance_reference(*gaussian_stats(a), *gaussian_stats(b))
    assert fast == pytest.approx(ref, rel=1e-6, abs=1e-8)
    assert fast > 0


def test_frechet_distance_of_known_gaussians():
    # N(mu1, I) vs N(mu2, 4 I) in d dims: |mu1-mu2|^2 + d + 4d - 2 * 2d = |dmu|^2 + d
    d = 5
    mu1, mu2 = np.zeros(d), np.full(d, 2.0)
    value = frechet_distance(mu1, np.eye(d), mu2, 4 * np.eye(d))
    assert value == pytest.approx(4.0 * d + d)


def test_frechet_distance_identical_sets_is_zero_even_rank_deficient():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(6, 64))  # fewer samples than dimensions, like 20 assets x 400 logits
    assert fvd_from_features(feats, feats.copy()) == pytest.approx(0.0, abs=1e-6)
    other = rng.normal(size=(6, 64)) + 0.5
    fast = fvd_from_features(feats, other)
    ref = frechet_distance_reference(*gaussian_stats(feats), *gaussian_stats(other))
    assert fast == pytest.approx(ref, rel=1e-4)


def test_gaussian_stats_needs_two_samples():
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))


def test_clip_indices_rules():
    assert clip_indices(16).tolist() == list(range(16))
    idx = clip_indices(24)
    assert idx[0] == 0 and idx[-1] == 23 and len(idx) == 16 and np.all(np.diff(idx) > 0)
    short = clip_indices(8)
    assert len(short) == 16 and short[0] == 0 and short[-1] == 7 and np.all(np.diff(short) >= 0)
    assert clip_indices(10, rule="first").tolist() == list(range(10)) + [9] * 6
    with pytest.raises(ValueError):
        clip_indices(10, rule="bogus")


def test_preprocess_range_layout_and_centre_crop():
    frames = np.zeros((24, 40, 60, 3), np.float32)
    frames[:, :, 10:50] = 1.0  # centre 40 columns white: after the square crop all white
    x = preprocess(frames, resolution=32)
    assert x.shape == (3, 16, 32, 32)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.allclose(x, torch.ones_like(x), atol=1e-5)


def test_inception_i3d_state_dict_layout_matches_the_pytorch_port():
    full = InceptionI3d()
    keys = set(full.state_dict())
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_2c_3x3.bn.running_var", "Mixed_3b.b1b.conv3d.weight",
                "Mixed_5c.b3b.bn.bias", "logits.conv3d.weight", "logits.conv3d.bias"):
        assert key in keys
    assert full.state_dict()["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert full.state_dict()["logits.conv3d.weight"].shape == (400, 1024, 1, 1, 1)
    assert sum(p.numel() for p in full.parameters()) == 12_697_264


def test_fvd_pipeline_end_to_end_with_a_tiny_random_i3d(tmp_path):
    path = write_tiny_i3d(tmp_path / "i3d_pretrained_400.pt", num_classes=12, width=1 / 16)
    detector = load_detector(path)  # same loader as real weights: width inferred from the file
    tiny = InceptionI3d.from_state_dict(torch.load(path)).eval()
    assert tiny.width == 1 / 16 and tiny.num_classes == 12

    rng = np.random.default_rng(0)
    base = [rng.uniform(0, 1, size=(8, 24, 24, 3)).astype(np.float32) for _ in range(3)]
    shifted = [np.clip(v * 0.3 + 0.6, 0, 1).astype(np.float32) for v in base]

    def feats(videos):
        return detector(torch.stack([preprocess(v, resolution=32) for v in videos])).numpy()

    # oneDNN is ~8x slower than the native kernels for 4-channel 3D convolutions
    with torch.backends.mkldnn.flags(enabled=False):
        f_base = feats(base)
        f_shifted = feats(shifted)
        with torch.no_grad():
            direct = tiny(preprocess(base[0], resolution=32)[None]).numpy()
    assert f_base.shape == (3, 12)
    np.testing.assert_allclose(f_base[0], direct[0], rtol=1e-5, atol=1e-6)
    assert fvd_from_features(f_base, f_base.copy()) == pytest.approx(0.0, abs=1e-6)
    assert fvd_from_features(f_base, f_shifted) > 1e-6


def test_torchscript_detector_path(tmp_path):
    class Scripted(torch.nn.Module):
        """Stands in for StyleGAN-V's i3d_torchscript.pt: same call signature, tiny body."""

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 5)

        def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False) -> torch.Tensor:
            if rescale or resize or not return_features:
                raise RuntimeError("FVD must call the detector with rescale=False, resize=False, return_features=True")
            return self.proj(x.mean(dim=(2, 3, 4)))

    module = Scripted().eval()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(module).save(str(path))
    x = preprocess(np.random.default_rng(1).uniform(size=(16, 32, 32, 3)).astype(np.float32), resolution=32)[None]
    out = load_detector(path)(x)
    with torch.no_grad():
        np.testing.assert_allclose(out.numpy(), module(x, False, False, True).numpy(), rtol=1e-5, atol=1e-6)
