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
