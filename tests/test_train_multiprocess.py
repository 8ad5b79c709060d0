"""Two-process CPU training (ENVIRONMENT.md commands): DDP over gloo and DeepSpeed ZeRO-2.

Each run must exit 0, write a loadable checkpoint, and report identical parameter checksums
on both ranks. Slow (process start-up, launcher shutdown, DeepSpeed op build): marked slow.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion4d.models import UNet4DConditionModel, load_components
from train.synthetic_orbits import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
ARGS = [
    "data.resolution=16", "data.num_frames=4", "model.tiny_block_out_channels=[16,32]", "model.tiny_attention_head_dim=4",
    "max_steps=2", "checkpoint_every=2", "report_to=none", "validation.at_end=false", "num_threads=1",
]


def _launch(tmp_path, launcher_args, env_extra, port):
    data = tmp_path / "data"
    if not data.exists():
        write_synthetic_dataset(data, num_assets=3, num_frames=8, size=32, orbits=2)
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DIFFUSION4D_NO_PROGRESS": "1", **env_extra}
    cmd = [ACCELERATE, "launch", *launcher_args, "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(port), str(REPO / "train" / "finetune.py"),
           "--config", str(REPO / "configs/train/tiny.yaml"), f"data.root={data}", f"output_dir={out}", *ARGS]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _check(out):
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    sums = [json.loads(x) for x in (out / "replica_checksums.jsonl").read_text().splitlines()]
    assert sorted(s["rank"] for s in sums) == [0, 1]
    assert len({s["checksum"] for s in sums}) == 1
    unet = load_components(out / "checkpoint-2", components=("unet",))["unet"]
    assert isinstance(unet, UNet4DConditionModel)


@pytest.mark.slow
def test_ddp_gloo_two_processes(tmp_path):
    _check(_launch(tmp_path, ["--multi_gpu"], {"ACCELERATE_USE_CPU": "true"}, 29541))


@pytest.mark.slow
def test_deepspeed_zero2_two_processes(tmp_path):
    pytest.importorskip("deepspeed")
    _check(_launch(tmp_path, ["--use_deepspeed", "--zero_stage", "2"], {"DS_ACCELERATOR": "cpu"}, 29542))
