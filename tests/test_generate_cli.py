"""``diffusion4d generate`` end to end on tiny checkpoints (text, image, static 3D), and bad input."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from diffusion4d.app import main
from diffusion4d.io import read_clip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from diffusion4d.pipelines.tiny import tiny_pipeline

    root = tmp_path_factory.mktemp("ckpt")
    tiny_pipeline().save_pretrained(root / "text")
    tiny_pipeline(static_conditioning=True, image_conditioning=True).save_pretrained(root / "full")
    return root


def _generate(argv, capsys):
    code = main(["generate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_motion_sweep_writes_every_output(checkpoints, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, _ = _generate(
        ["--model", str(checkpoints / "text"), "--prompt", "A red robot!", "--motion", "0,0.5", "--steps", "2",
         "--seed", "7", "--output", str(out)],
        capsys,
    )
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_red_robot_m0.00", "a_red_robot_m0.50"]
    clips = []
    for name in names:
        folder = out / name
        clip = read_clip(folder / "dynamic")
        assert clip.frames.shape == (4, 16, 16, 4) and clip.cameras.mode == "dynamic"
        assert len(imageio.mimread(folder / "orbit.mp4")) == 4
        assert Image.open(folder / "orbit.gif").n_frames == 4
        gen = json.loads((folder / "generation.json").read_text())
        assert gen["seed"] == 7 and gen["prompt"] == "A red robot!" and gen["num_inference_steps"] == 2
        assert gen["guidance_scale"] == 7.0 and gen["prior_guidance_scale"] == 0.5 and gen["prior"] == "self"
        assert {"load_model", "sampling_denoise", "write"} <= set(gen["timings"])
        clips.append(clip.frames)
    assert json.loads((out / names[1] / "generation.json").read_text())["motion_magnitude"] == 0.5
    assert np.abs(clips[0].astype(int) - clips[1]).max() > 0  # same seed, different motion


def test_image_and_static_3d_inputs(checkpoints, tmp_path, capsys):
    from diffusion4d.data_curation.procedural import generate_assets

    asset = generate_assets(tmp_path / "assets", 1, seed=0)[0].path
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[5:20, 30:50] = (0, 0, 255, 255)
    Image.fromarray(rgba).save(tmp_path / "in.png")
    out = tmp_path / "out"
    code, _, err = _generate(
        ["--model", str(checkpoints / "full"), "--image", str(tmp_path / "in.png"), "--steps", "1",
         "--scheduler", "dpm", "--num-samples", "2", "--output", str(out)],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["in_s0", "in_s1"]
    assert json.loads((out / "in_s1" / "generation.json").read_text())["seed"] == 1
    assert (out / "in_s0" / "input.png").is_file()
    code, _, err = _generate(
        ["--model", str(checkpoints / "full"), "--static-3d", str(asset), "--steps", "1", "--name", "st",
         "--output", str(out)],
        capsys,
    )
    assert code == 0, err
    static = read_clip(out / "st" / "static")
    assert static.cameras.mode == "static" and static.frames[..., 3].max() == 255  # the asset is in view
    assert read_clip(out / "st" / "dynamic").frames.shape == (4, 16, 16, 4)


def test_reconstruct_hands_the_clip_to_recon(checkpoints, tmp_path, capsys, monkeypatch):
    import diffusion4d.recon

    calls = []

    def fake_reconstruct(clip_dir, output_dir, **kwargs):  # records the call; recon has its own tests
        calls.append((clip_dir, output_dir, kwargs))
        return {"psnr": 1.0}

    monkeypatch.setattr(diffusion4d.recon, "reconstruct", fake_reconstruct)
    out = tmp_path / "out"
    code, _, err = _generate(
        ["--model", str(checkpoints / "text"), "--prompt", "x", "--steps", "1", "--guidance", "0", "0",
         "--reconstruct", "--recon-preset", "test", "--output", str(out)],
        capsys,
    )
    assert code == 0, err
    (clip_dir, output_dir, kwargs) = calls[0]
    assert clip_dir == str(out / "x" / "dynamic") and output_dir == str(out / "x" / "recon")
    assert kwargs["preset"] == "test"
    gen = json.loads((out / "x" / "generation.json").read_text())
    assert gen["recon_metrics"] == {"psnr": 1.0} and "reconstruct" in gen["timings"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "{tmp}/missing", "--prompt", "x"], "model folder not found"),
        (["--model", "{tmp}", "--prompt", "x"], "not a Diffusion4D checkpoint"),
        (["--model", "{text}", "--image", "{tmp}/bad.png"], "not trained for image conditioning"),
        (["--model", "{full}", "--image", "{tmp}/bad.png"], "cannot read image"),
        (["--model", "{full}", "--static-3d", "{tmp}/bad.glb"], "cannot render 3D asset"),
        (["--model", "{full}", "--static-3d", "{tmp}/none.glb"], "3D asset not found"),
        (["--model", "{text}", "--prompt", "x", "--prior", "separate"], "prior_unet"),
        (["--model", "{text}", "--prompt", "x", "--motion", "0,a"], "not a number"),
        (["--model", "{text}", "--prompt", "x", "--motion", "0,0.5,0.5"], "lists 0.5 more than once"),
        (["--model", "{text}"], "at least one input"),
    ],
)
def test_bad_input_exits_2_with_one_line(checkpoints, tmp_path, capsys, argv, message):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "bad.glb").write_bytes(b"garbage")
    fill = {"tmp": str(tmp_path), "text": str(checkpoints / "text"), "full": str(checkpoints / "full")}
    argv = [a.format(**fill) for a in argv] + ["--output", str(tmp_path / "out"), "--steps", "1"]
    code, _, err = _generate(argv, capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.startswith("diffusion4d generate")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_sweep_sample_names_tell_close_magnitudes_apart():
    """Two decimals where they suffice; more where requested values agree to two decimals (a sweep
    up to a small largest training magnitude, e.g. 0, 0.0036, ..., 0.0144, once wrote every sample
    but the last over the one before under the name ``_m0.00`` / ``_m0.01``)."""
    from diffusion4d.app.generate import sample_names

    def names(motions, num_samples=1):
        return [n for n, _, _ in sample_names("x", num_samples, motions, True)]

    assert names([0.0, 0.5]) == ["x_m0.00", "x_m0.50"]
    sweep = [0.0, 0.0036, 0.0072, 0.0108, 0.0144]
    assert names(sweep) == ["x_m0.0000", "x_m0.0036", "x_m0.0072", "x_m0.0108", "x_m0.0144"]
    assert len(set(names([0.0, 1e-7, 2e-7], num_samples=2))) == 6
    assert names([0.25], num_samples=1) == ["x_m0.25"]


def test_settings_come_from_a_preset_overrides_and_flags_in_that_order(tmp_path):
    import argparse

    from diffusion4d.app.generate import add_arguments, resolve_settings

    p = argparse.ArgumentParser()
    add_arguments(p)
    base = ["--model", str(tmp_path), "--output", str(tmp_path / "o"), "--prompt", "x"]
    args = p.parse_args(base)
    cfg = resolve_settings(args)
    assert (cfg.scheduler, cfg.steps, cfg.guidance_scale, cfg.prior_guidance_scale, cfg.prior) == ("ddim", None, 7.0, 0.5, "auto")
    assert args.guidance == (7.0, 0.5) and args.no_batch_branches is False
    args = p.parse_args(base + ["--config", "fast", "seed=3", "guidance_scale=5", "--guidance", "4", "0.25", "--no-batch-branches"])
    cfg = resolve_settings(args)
    assert (cfg.scheduler, cfg.steps, cfg.seed) == ("dpm", 20, 3)
    assert args.guidance == (4.0, 0.25) and args.no_batch_branches is True  # the flag wins over the override


def test_unknown_settings_key_is_one_line(tmp_path, capsys):
    from diffusion4d.app import main

    assert main(["generate", "--model", str(tmp_path), "--output", str(tmp_path / "o"), "--prompt", "x", "nope=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
