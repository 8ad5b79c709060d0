"""The README's real-scale table, command by command, on a random-weight checkpoint in the exact
diffusers layout of ``ali-vilab/text-to-video-ms-1.7b`` (small width, real CLIP tokenizer, real
CLIP text model class, real VAE class): curate -> stage 1 (3D prior) -> stage 2 (t2v, i2v, static3d)
with ``accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml`` in bf16 on
2 CPU processes with the latent cache -> ``generate`` from text, an image and a static 3D asset
with the frozen prior -> ``reconstruct`` -> ``evaluate``.

Slow (four 2-process DeepSpeed launches): it stays because it is the only test that walks the
path real users take, in the real checkpoint layout, with the flags the README promises.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from diffusion4d.app import main
from diffusion4d.io import read_clip, read_manifest

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
SMALL = [
    "max_steps=1", "checkpoint_every=1", "batch_size=1", "gradient_accumulation_steps=1", "data.resolution=64",
    "data.num_frames=4", "report_to=none", "validation.every=0", "validation.at_end=false", "num_threads=1",
]


def _launch(preset: str, out: Path, data: Path, base: Path, port: int, extra=()) -> Path:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DIFFUSION4D_NO_PROGRESS": "1", "DS_ACCELERATOR": "cpu"}
    cmd = [ACCELERATE, "launch", "--config_file", "configs/accelerate/deepspeed_zero2.yaml", "--num_processes", "2",
           "--mixed_precision", "bf16", "--main_process_port", str(port), "train/finetune.py",
           "--config", f"configs/train/{preset}", f"data.root={data}", f"model.base={base}", f"output_dir={out}", *SMALL, *extra]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "mixed precision bf16: UNet weights bfloat16, DeepSpeed engine" in proc.stderr
    return out / "checkpoint-1"


@pytest.mark.slow
def test_readme_real_scale_commands_on_the_modelscope_layout(tmp_path):
    pytest.importorskip("deepspeed")
    from diffusion4d.testing.modelscope_layout import write_modelscope_layout

    base = write_modelscope_layout(tmp_path / "text-to-video-ms-1.7b")
    assets, data = tmp_path / "assets", tmp_path / "d4d"

    # curate (the procedural families include a motionless asset: stage-1 data only)
    assert main(["assets", "--output", str(assets), "--count", "7", "--seed", "0"]) == 0
    assert main(["curate", "--input", str(assets), "--captions", str(assets / "captions.csv"), "--output", str(data),
                 "--frames", "4", "--resolution", "64", "--modes", "dynamic,static,front", "--orbits-per-asset", "1",
                 "--workers", "0", "--s-high", "0.999", "--s-low", "0.05"]) == 0
    records = read_manifest(data / "manifest.jsonl")
    accepted = [r for r in records if r["status"] == "accepted"]
    prior_only = [r for r in records if r.get("stages") == ["prior3d"]]
    assert accepted and prior_only, [(r["uid"], r["status"], r.get("stages")) for r in records]

    # stage 1: the 3D-aware prior, from the ModelScope-layout base, with the base's CLIP text stack
    s1 = _launch("prior3d.yaml", tmp_path / "runs" / "prior3d", data, base, 29571)
    (cache,) = [p for p in (tmp_path / "runs" / "prior3d" / "latent_cache").iterdir() if p.is_dir()]
    built = [json.loads(x) for x in (cache / "build_log.jsonl").read_text().splitlines()]
    assert sorted(b["rank"] for b in built) == [0, 1]
    assert sum(b["written"] for b in built) == len([r for r in records if "prior3d" in r.get("stages", [])])
    latents = load_file(str(next(cache.glob("*.safetensors"))))["latents"]
    assert latents.shape == (4, 4, 8, 8)  # VAE latents: 4 channels, 4 frames, 64 px / 8

    # stage 2: t2v, i2v and static3d, each from the stage-1 checkpoint, each carrying it as the frozen prior
    ckpt = {}
    for port, name in zip((29572, 29573, 29574), ("t2v", "i2v", "static3d")):
        ckpt[name] = _launch(f"{name}.yaml", tmp_path / "runs" / name, data, s1, port)
        index = json.loads((ckpt[name] / "model_index.json").read_text())
        assert index["prior_unet"] == ["diffusion4d", "UNet4DConditionModel"]
        assert index["text_encoder"] == ["transformers", "CLIPTextModel"] and index["vae"] == ["diffusers", "AutoencoderKL"]

    # generate from text, an image and a static 3D asset with the frozen prior (the default)
    rec = accepted[0]
    out = tmp_path / "out"
    common = ["--steps", "2", "--output", str(out), "--guidance", "7.0", "0.5"]
    assert main(["generate", "--model", str(ckpt["t2v"]), "--prompt", rec["caption"], "--motion", "0.02", "--name", rec["uid"], *common]) == 0
    image = data / rec["uid"] / "dynamic" / "000.png"
    assert main(["generate", "--model", str(ckpt["i2v"]), "--image", str(image), "--prompt", rec["caption"], "--name", "from_image", *common]) == 0
    asset = assets / f"{rec['uid']}.glb"
    assert main(["generate", "--model", str(ckpt["static3d"]), "--static-3d", str(asset), "--prompt", rec["caption"], "--name", "from_3d", *common]) == 0
    for name in (rec["uid"], "from_image", "from_3d"):
        record = json.loads((out / name / "generation.json").read_text())
        assert record["prior"] == "separate"
        assert read_clip(out / name / "dynamic").frames.shape == (4, 64, 64, 4)

    # reconstruct the text-to-4D orbit, then evaluate it against the curated renders
    assert main(["reconstruct", "--input", str(out / rec["uid"] / "dynamic"), "--output", str(tmp_path / "recon"),
                 "--preset", "test", "--holdout", "2"]) == 0
    assert json.loads((tmp_path / "recon" / "metrics.json").read_text())["psnr_train"] > 0
    only = tmp_path / "only_t2v"
    only.mkdir()
    (only / rec["uid"]).symlink_to(out / rec["uid"], target_is_directory=True)
    assert main(["evaluate", "--pred", f"ours={only}", "--gt", str(data), "--metrics", "psnr,ssim",
                 "--output", str(tmp_path / "tables"), "--format", "md,json"]) == 0
    table = json.loads((tmp_path / "tables" / "metrics.json").read_text())
    assert "ours" in json.dumps(table)
