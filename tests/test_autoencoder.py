"""The small AutoencoderKL fitted to curated renders (train/autoencoder.py) and ``model.vae=<folder>``."""

import json

import pytest
import torch

from diffusion4d.errors import UserError
from diffusion4d.testing.orbits import write_synthetic_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from diffusion4d.config import load_config
    from diffusion4d.train.autoencoder import train_autoencoder
    from diffusion4d.train.train_config import AutoencoderConfig

    root = tmp_path_factory.mktemp("ae")
    data = root / "curated"
    write_synthetic_dataset(data, num_assets=5, num_frames=4, size=32, orbits=1)
    cfg = load_config(AutoencoderConfig, None, ["resolution=32", "steps=40", "batch_size=8", "num_threads=1"])
    summary = train_autoencoder(cfg, str(data), str(root / "vae"))
    return root, cfg, summary


def test_writes_a_diffusers_model_folder_with_a_unit_variance_scale(trained):
    from diffusers import AutoencoderKL

    from diffusion4d.models.latents import decode_latents, encode_frames
    from diffusion4d.train.autoencoder import SUMMARY_FILE, collect_frames

    root, cfg, summary = trained
    folder = root / "vae"
    assert (folder / "config.json").is_file() and (folder / SUMMARY_FILE).is_file()
    assert not list(root.glob(".tmp-*")), "the temporary folder was left behind"
    vae = AutoencoderKL.from_pretrained(folder).eval()
    assert vae.config.scaling_factor == pytest.approx(summary["scaling_factor"])
    assert summary["latent"] == [4, 8] and summary["heldout_assets"] == ["synthetic004"]
    frames, uids = collect_frames(root / "curated", 32)
    assert frames.shape == (len(uids), 3, 32, 32) and len(set(uids)) == 5
    x = torch.from_numpy(frames[:8]).unsqueeze(0)  # [1, F, 3, H, W]
    with torch.no_grad():
        z = encode_frames(vae, x)
        assert z.shape == (1, 4, 8, 8, 8)
        assert 0.5 < float(z.std()) < 2.0  # scaled to about unit variance (training frames)
        back = decode_latents(vae, z)
    assert back.shape == x.shape
    assert json.loads((folder / SUMMARY_FILE).read_text())["psnr_train"] == pytest.approx(summary["psnr_train"])
    assert summary["psnr_train"] > 12.0  # 40 steps on flat discs: far from noise (white frames would give ~10 dB)


def test_a_rerun_keeps_the_trained_folder(trained):
    from diffusion4d.train.autoencoder import train_autoencoder

    root, cfg, summary = trained
    again = train_autoencoder(cfg, str(root / "curated"), str(root / "vae"))
    assert again == summary


def test_the_trainer_builds_the_unet_on_its_latents(trained):
    from diffusion4d.config import load_config
    from diffusion4d.train.model_setup import build_components
    from diffusion4d.train.train_config import TrainConfig

    root, _, _ = trained
    cfg = load_config(TrainConfig, None, ["model.base=tiny", "model.text_encoder=minilm", f"model.vae={root / 'vae'}",
                                          "data.resolution=32", "data.num_frames=4"])
    c = build_components(cfg.model, cfg.data)
    assert c.vae is not None and not any(p.requires_grad for p in c.vae.parameters())
    assert c.unet.config.in_channels >= 4 and c.unet.config.sample_size == 8
    bad = load_config(TrainConfig, None, ["model.base=tiny", "model.text_encoder=minilm", f"model.vae={root / 'vae'}",
                                          "data.resolution=30", "data.num_frames=4"])
    with pytest.raises(UserError, match="not a multiple of the VAE's downsampling 4"):
        build_components(bad.model, bad.data)
    missing = load_config(TrainConfig, None, ["model.vae=/does/not/exist"])
    with pytest.raises(UserError, match="AutoencoderKL folder"):
        build_components(missing.model, missing.data)


def test_command_line_errors_are_one_line(tmp_path, capsys):
    from diffusion4d.app import main

    assert main(["train-autoencoder", "--data", str(tmp_path / "none"), "--output", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["train-autoencoder", "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 2
    assert "no curated clips" in capsys.readouterr().err
    assert main(["train-autoencoder", "--data", str(tmp_path / "empty"), "--output", str(tmp_path / "o"), "resolution=30"]) == 2
    assert "not a multiple" in capsys.readouterr().err


def _object_frames(rgb, size=16, frames=2):
    """[N, 3, H, W] white frames holding a 4 x 4 square of colour ``rgb``."""
    x = torch.ones(frames, 3, size, size)
    x[:, :, 6:10, 6:10] = torch.tensor(rgb)[:, None, None]
    return x


def test_reconstruction_loss_weights_object_pixels():
    """k = 0 is the plain MSE + 0.5 L1 the autoencoder trained with before the weights; with k > 0
    an error on the object costs more than the same error on the background, against a per-pixel
    reference computed by hand."""
    import torch.nn.functional as F

    from diffusion4d.train.autoencoder import reconstruction_loss

    x = _object_frames([0.9, 0.8, 0.1])
    on_object = x.clone()
    on_object[:, 0, 7, 7] -= 0.5
    on_background = x.clone()
    on_background[:, 0, 0, 0] -= 0.5
    for recon in (on_object, on_background, torch.rand_like(x)):
        assert reconstruction_loss(recon, x, 0.0) == pytest.approx(float(F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)))
    k = 4.0
    assert reconstruction_loss(on_object, x, k) > reconstruction_loss(on_background, x, k)
    share = 16 / 256  # object pixels per frame
    w_object, w_background = (1 + k) / (1 + k * share), 1 / (1 + k * share)  # weights rescaled to mean 1
    err = 0.5**2 + 0.5 * 0.5
    n = x.numel()
    assert reconstruction_loss(on_object, x, k) == pytest.approx(2 * err * w_object / n, rel=1e-5)
    assert reconstruction_loss(on_background, x, k) == pytest.approx(2 * err * w_background / n, rel=1e-5)


def test_colour_fidelity_names_the_clip_whose_colour_changed():
    from diffusion4d.metrics import foreground_colour
    from diffusion4d.train.autoencoder import colour_fidelity

    yellow, pink = _object_frames([0.8, 0.7, 0.15]), _object_frames([0.85, 0.4, 0.6])
    original = torch.cat([yellow, pink])
    recon = torch.cat([pink, pink])  # the yellow clip came back pink, the pink one unchanged
    got = colour_fidelity(original, recon, ["yellow", "yellow", "pink", "pink"])
    expected = float(torch.linalg.vector_norm(torch.tensor([0.8, 0.7, 0.15]) - torch.tensor([0.85, 0.4, 0.6])))
    assert got["per_uid"] == {"pink": 0.0, "yellow": pytest.approx(expected, abs=1e-4)}
    assert got["worst"] == "yellow" and got["max"] == pytest.approx(expected, abs=1e-4)
    assert got["mean"] == pytest.approx(expected / 2, abs=1e-4)
    assert foreground_colour(torch.ones(1, 3, 4, 4)) is None
    assert colour_fidelity(torch.ones(2, 3, 4, 4), torch.ones(2, 3, 4, 4), ["a", "a"])["mean"] is None
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        foreground_colour(torch.ones(3, 4, 4))


def test_summary_reports_colour_error_and_no_heldout_psnr_without_held_out_assets(trained, tmp_path):
    """``holdout_every=0`` trains on every asset: the held-out PSNR is then None (not a number measured on
    training frames); the object-colour error of the round trip is reported per training clip folder."""
    from diffusion4d.config import load_config
    from diffusion4d.train.autoencoder import train_autoencoder
    from diffusion4d.train.train_config import AutoencoderConfig

    root, _, summary = trained
    assert set(summary["colour_error_per_uid"]) == {f"synthetic00{i}" for i in range(4)}  # synthetic004 is held out
    assert summary["colour_error_train_max"] == max(summary["colour_error_per_uid"].values())
    assert 0.0 <= summary["colour_error_train"] <= summary["colour_error_train_max"]
    cfg = load_config(AutoencoderConfig, None, ["resolution=32", "steps=3", "batch_size=4", "num_threads=1", "holdout_every=0",
                                                "foreground_weight=2"])
    every = train_autoencoder(cfg, str(root / "curated"), str(tmp_path / "vae"))
    assert every["psnr_heldout"] is None and every["heldout_assets"] == []
    assert len(every["colour_error_per_uid"]) == 5
    with pytest.raises(Exception, match="foreground_weight must be >= 0"):
        load_config(AutoencoderConfig, None, ["foreground_weight=-1"])


def test_latent_whitening_gives_identity_covariance():
    from diffusion4d.train.autoencoder import latent_whitening

    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.8, 0.0, 0.02]])  # nearly one direction, like the demo's latents
    z = torch.randn(4000, 3, generator=g) @ mix.T + torch.tensor([0.5, -1.0, 2.0])
    a, mean, eigenvalues = latent_whitening(z)
    white = (z.double() - mean) @ a.T
    assert torch.allclose(torch.cov(white.T), torch.eye(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(white.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.all(eigenvalues[1:] >= eigenvalues[:-1]) and eigenvalues[0] < 1e-2 * eigenvalues[-1]
    assert torch.allclose(eigenvalues, torch.linalg.eigvalsh(torch.cov(z.double().T)))
    assert torch.allclose(a, a.T)  # ZCA: symmetric, the whitened axes stay closest to the channels


def test_folded_whitening_equals_transforming_the_latents_by_hand(trained):
    """The fast path (the transform folded into the 1x1 convs around the latent) against the reference
    (the untouched autoencoder, its latents transformed by hand): the same latents, the same decodes."""
    from diffusers import AutoencoderKL

    from diffusion4d.train.autoencoder import collect_frames, fold_latent_transform, latent_whitening

    root, _, _ = trained
    reference = AutoencoderKL.from_pretrained(root / "vae").eval()
    folded = AutoencoderKL.from_pretrained(root / "vae").eval()
    frames, _ = collect_frames(root / "curated", 32)
    x = torch.from_numpy(frames) * 2 - 1
    with torch.no_grad():
        z = reference.encode(x).latent_dist.mode()  # [N, 4, 8, 8]
        a, mean, _ = latent_whitening(z.permute(0, 2, 3, 1).reshape(-1, 4))
        fold_latent_transform(folded, a, mean)
        by_hand = torch.einsum("ij,njhw->nihw", a.float(), z - mean.float()[None, :, None, None])
        z_folded = folded.encode(x).latent_dist.mode()
        assert torch.allclose(z_folded, by_hand, atol=1e-4)
        cov = torch.cov(z_folded.permute(0, 2, 3, 1).reshape(-1, 4).T.double())
        assert torch.allclose(cov, torch.eye(4, dtype=torch.float64), atol=1e-3)
        assert torch.allclose(folded.decode(z_folded).sample, reference.decode(z).sample, atol=1e-4)
        noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))  # any latent, not only encoded ones
        unwhitened = torch.einsum("ij,njhw->nihw", torch.linalg.inv(a).float(), noise) + mean.float()[None, :, None, None]
        assert torch.allclose(folded.decode(noise).sample, reference.decode(unwhitened).sample, atol=1e-4)


def test_whiten_latents_option_records_the_eigenvalues(trained, tmp_path):
    from diffusers import AutoencoderKL

    from diffusion4d.config import load_config
    from diffusion4d.models.latents import encode_frames
    from diffusion4d.train.autoencoder import collect_frames, train_autoencoder
    from diffusion4d.train.train_config import AutoencoderConfig

    root, _, _ = trained
    args = ["resolution=32", "steps=5", "batch_size=4", "num_threads=1", "holdout_every=0", "lr_scheduler=cosine"]
    plain = train_autoencoder(load_config(AutoencoderConfig, None, args), str(root / "curated"), str(tmp_path / "plain"))
    white = train_autoencoder(load_config(AutoencoderConfig, None, [*args, "whiten_latents=true"]), str(root / "curated"),
                              str(tmp_path / "white"))
    assert plain["latent_eigenvalues"] is None and len(white["latent_eigenvalues"]) == 4
    assert white["psnr_train"] == pytest.approx(plain["psnr_train"], abs=1e-3)  # same training; the fold keeps round trips
    assert white["colour_error_per_uid"] == pytest.approx(plain["colour_error_per_uid"], abs=2e-4)
    frames, _ = collect_frames(root / "curated", 32)
    vae = AutoencoderKL.from_pretrained(tmp_path / "white").eval()
    with torch.no_grad():
        z = encode_frames(vae, torch.from_numpy(frames)[None])[0]  # [4, N, 8, 8]
    cov = torch.cov(z.reshape(4, -1).double()) / vae.config.scaling_factor**2
    assert torch.allclose(cov, torch.eye(4, dtype=torch.float64), atol=1e-3)
    with pytest.raises(Exception, match="lr_scheduler"):
        load_config(AutoencoderConfig, None, ["lr_scheduler=sometimes"])


def test_a_retrained_autoencoder_in_the_same_folder_gets_a_new_latent_cache(trained, tmp_path):
    """The trainer names its latent cache by what produced it; an autoencoder folder counts by its files'
    content, so a retrained one (same path) cannot reuse the old latents."""
    import shutil

    from diffusion4d.train.orbit_dataset import cache_fingerprint, model_folder_identity

    root, _, _ = trained
    folder = tmp_path / "vae"
    shutil.copytree(root / "vae", folder)

    def tag():
        return cache_fingerprint(["4d", 32, 4, model_folder_identity(str(folder)), "minilm"])

    first = tag()
    assert tag() == first  # same files, same cache
    weights = folder / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the weights
    weights.write_bytes(bytes(data))
    assert tag() != first
    assert model_folder_identity("base") == "base" and model_folder_identity(None) is None
    assert model_folder_identity(str(tmp_path / "not-there")) == str(tmp_path / "not-there")
