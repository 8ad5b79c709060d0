"""End to end: train 6 steps with a checkpoint at step 3, resume from it, reload the checkpoint."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffusion4d.config import load_config
from diffusion4d.models import UNet4DConditionModel, load_components
from diffusion4d.testing.orbits import write_synthetic_dataset
from diffusion4d.train.train_config import TrainConfig
from diffusion4d.train.trainer import run

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "data.resolution=16", "data.num_frames=4", "model.tiny_block_out_channels=[16,32]", "model.tiny_attention_head_dim=4",
    "max_steps=6", "checkpoint_every=3", "keep_last=5", "batch_size=2", "num_threads=1",
    "validation.every=0", "validation.num_inference_steps=2", "validation.num_samples=1",
]


def _reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_synthetic_dataset(root / "data", num_assets=3, num_frames=8, size=32, orbits=2)
    preset = REPO / "configs" / "train" / "tiny.yaml"
    n = torch.get_num_threads()
    try:
        _reset_accelerate()
        # ema_power: the EMA's power warm-up, stored in its checkpointed state (the resumed run b gets it back)
        cfg_a = load_config(TrainConfig, preset, SMALL + [f"data.root={root / 'data'}", f"output_dir={root / 'a'}", "ema_power=0.75"])
        a = run(cfg_a)
        _reset_accelerate()
        cfg_b = load_config(TrainConfig, preset, SMALL + [f"data.root={root / 'data'}", f"output_dir={root / 'b'}",
                                                          "report_to=none", "validation.at_end=false"])
        b = run(cfg_b, resume=str(root / "a" / "checkpoint-3"))
    finally:
        _reset_accelerate()
        torch.set_num_threads(n)
    return root, a, b


def test_resume_reproduces_losses_exactly(runs):
    root, a, b = runs
    assert [r["step"] for r in a["history"]] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in b["history"]] == [4, 5, 6]
    for ra, rb in zip(a["history"][3:], b["history"]):
        assert ra["loss"] == rb["loss"] and ra["ldm"] == rb["ldm"] and ra["mr"] == rb["mr"]
    lines = [json.loads(x) for x in (root / "a" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_outputs_and_reload(runs):
    root, a, _ = runs
    out = root / "a"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert not list(out.glob(".tmp-*"))
    assert (out / "config.yaml").is_file() and list((out / "logs").rglob("events.out.tfevents*"))
    assert list((out / "validation").rglob("*.mp4"))
    ck = out / "checkpoint-6"
    index = json.loads((ck / "model_index.json").read_text())
    assert index["_class_name"] == "Diffusion4DPipeline"
    assert index["unet"] == ["diffusion4d", "UNet4DConditionModel"] and index["vae"] == [None, None]
    assert (ck / "training_config.yaml").is_file()
    parts = load_components(ck)
    unet = parts["unet"]
    assert isinstance(unet, UNet4DConditionModel) and unet.config.num_frames == 4
    trained = load_file(str(ck / "accelerate_state" / "model.safetensors"))
    # the tiny preset keeps an EMA: the pipeline folder holds the EMA weights (accelerate's
    # custom_checkpoint_0 is the EMAModel state), accelerate_state the raw trained weights
    ema = torch.load(ck / "accelerate_state" / "custom_checkpoint_0.pkl", weights_only=False)
    assert ema["use_ema_warmup"] and ema["power"] == 0.75 and ema["optimization_step"] == 6
    names = [k for k, _ in unet.named_parameters()]
    assert len(names) == len(ema["shadow_params"])
    shadow = dict(zip(names, ema["shadow_params"]))
    differs = 0
    for k, v in unet.state_dict().items():
        if k in shadow:
            assert torch.equal(v, shadow[k].to(v)), k
            differs += not torch.equal(v, trained[k])
        else:  # buffers
            assert torch.equal(v, trained[k]), k
    assert differs > 0  # the EMA is not the raw model
    assert type(parts["scheduler"]).__name__ == "DDIMScheduler"
    try:
        from diffusion4d.pipelines import Diffusion4DPipeline
    except ImportError:
        return  # the inference pipeline is another stage's module
    pipe = Diffusion4DPipeline.from_pretrained(str(ck))
    assert isinstance(pipe.unet, UNet4DConditionModel)


def test_bad_data_root_is_a_clear_error(tmp_path):
    from diffusion4d.train.finetune import main

    _reset_accelerate()
    code = main(["--config", str(REPO / "configs/train/tiny.yaml"), f"data.root={tmp_path}", f"output_dir={tmp_path / 'o'}", "report_to=none"])
    _reset_accelerate()
    assert code == 2


def test_resume_in_place_drops_replayed_rows_and_keeps_the_first_loss(tmp_path):
    """A run killed after step 5 (checkpoint at 3) resumed in its own folder: one row per step, first loss kept."""
    import shutil

    write_synthetic_dataset(tmp_path / "data", num_assets=3, num_frames=8, size=32, orbits=2)
    preset = REPO / "configs" / "train" / "tiny.yaml"
    args = SMALL + [f"data.root={tmp_path / 'data'}", f"output_dir={tmp_path / 'run'}", "report_to=none", "validation.at_end=false"]
    n = torch.get_num_threads()
    try:
        _reset_accelerate()
        full = run(load_config(TrainConfig, preset, args))
        # simulate the kill: the checkpoint at 6 never happened, rows 4-6 were logged
        shutil.rmtree(tmp_path / "run" / "checkpoint-6")
        (tmp_path / "run" / "losses.jsonl").write_text((tmp_path / "run" / "losses.jsonl").read_text() + '{"step": 7, "lo')
        _reset_accelerate()
        resumed = run(load_config(TrainConfig, preset, args), resume="latest")
    finally:
        _reset_accelerate()
        torch.set_num_threads(n)
    rows = [json.loads(x) for x in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows] == [r["loss"] for r in full["history"]]
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["first_loss"] == full["history"][0]["loss"] == resumed["summary"]["first_loss"]


def test_foreground_weighted_loss_is_the_same_from_the_cache_and_from_pixels(tmp_path):
    """``loss.foreground_weight``: the cached masks and the ones computed from the batch's frames
    give the same first loss, and it differs from the plain MSE's."""
    write_synthetic_dataset(tmp_path / "data", num_assets=3, num_frames=8, size=32, orbits=1)
    preset = REPO / "configs" / "train" / "tiny.yaml"
    base = SMALL + [f"data.root={tmp_path / 'data'}", "report_to=none", "validation.at_end=false", "max_steps=1", "checkpoint_every=0"]
    first = {}
    n = torch.get_num_threads()
    try:
        for name, extra in {"cached": ["loss.foreground_weight=4"], "pixels": ["loss.foreground_weight=4", "data.cache_latents=false"],
                            "plain": []}.items():  # fmt: skip
            _reset_accelerate()
            out = run(load_config(TrainConfig, preset, base + extra + [f"output_dir={tmp_path / name}"]))
            first[name] = out["history"][0]["loss"]
    finally:
        _reset_accelerate()
        torch.set_num_threads(n)
    assert abs(first["cached"] - first["pixels"]) < 1e-5 * first["plain"]
    assert abs(first["cached"] - first["plain"]) > 1e-3 * first["plain"]


def _condition_sensitivity():
    import importlib.util

    spec = importlib.util.spec_from_file_location("condition_sensitivity", REPO / "benchmarks" / "condition_sensitivity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_condition_sensitivity_benchmark_measures_the_caption_and_camera_paths(runs, tmp_path):
    """benchmarks/condition_sensitivity.py on a trained run: seeded, and a UNet whose caption paths are
    cut (cross-attention values and the pooled-text MLP zeroed) shows no gain from its own caption; one whose
    camera embedding is cut shows none from its own cameras."""
    import shutil

    root, _, _ = runs
    bench = _condition_sensitivity()
    first = bench.measure(root / "a", root / "a" / "checkpoint-6", [300, 900], draws=1)
    assert first == bench.measure(root / "a", root / "a" / "checkpoint-6", [300, 900], draws=1)
    assert [r["t"] for r in first] == [300, 900] and all(r["alternatives"] == 3 and r["orbits"] == 3 for r in first)
    assert all(r["own"] > 0 and r["other"] > 0 and r["empty"] > 0 and 0 <= r["top1"] <= 1 for r in first)
    assert any(abs(r["gain"]) > 1e-6 for r in first)  # the trained model reads its caption

    cut = tmp_path / "run"
    shutil.copytree(root / "a", cut, ignore=shutil.ignore_patterns("checkpoint-3", "validation", "logs"))
    unet = load_components(cut / "checkpoint-6", components=("unet",))["unet"]
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if ".attn2.to_v." in name or (name.startswith("text_pooled_embedding.") and name.endswith("weight")):
                p.zero_()
    unet.save_pretrained(str(cut / "checkpoint-6" / "unet"))
    for r in bench.measure(cut, cut / "checkpoint-6", [300, 900], draws=1):
        assert abs(r["gain"]) < 1e-6 and abs(r["own"] - r["empty"]) < 1e-6 * r["own"]
    views = bench.measure(root / "a", root / "a" / "checkpoint-6", [300, 900], draws=1, condition="camera")
    import yaml

    frames = yaml.safe_load((root / "a" / "config.yaml").read_text())["data"]["num_frames"]
    assert all(r["alternatives"] == frames and r["orbits"] == 3 for r in views)  # every roll of the orbit's cameras
    assert any(abs(r["gain"]) > 1e-6 for r in views)  # the trained camera embedding changes the prediction
    with torch.no_grad():
        unet.camera_embedding.linear_2.weight.zero_()
        unet.camera_embedding.linear_2.bias.zero_()
    unet.save_pretrained(str(cut / "checkpoint-6" / "unet"))
    for r in bench.measure(cut, cut / "checkpoint-6", [300, 900], draws=1, condition="camera"):
        assert abs(r["gain"]) < 1e-6 and abs(r["own"] - r["empty"]) < 1e-6 * r["own"]


def test_condition_sensitivity_benchmark_measures_the_motion_path(runs, tmp_path):
    """``--condition motion``: with one caption for every asset, each orbit's own m is among the caption's
    magnitudes; the trained motion embedding changes the prediction, and cutting it leaves no gain."""
    import shutil

    import yaml

    root, _, _ = runs
    bench = _condition_sensitivity()
    data, run_dir = tmp_path / "data", tmp_path / "run"
    shutil.copytree(root / "data", data)
    for meta_path in data.glob("*/meta.json"):  # one caption, three magnitudes
        meta = json.loads(meta_path.read_text())
        meta["caption"] = "one caption for every asset"
        meta_path.write_text(json.dumps(meta))
    shutil.copytree(root / "a", run_dir, ignore=shutil.ignore_patterns("checkpoint-3", "validation", "logs"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    cfg["data"]["root"] = str(data)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit, match="alternative motion"):  # distinct captions: no orbit shares its caption
        bench.measure(root / "a", root / "a" / "checkpoint-6", [300], draws=1, condition="motion")
    rows = bench.measure(run_dir, run_dir / "checkpoint-6", [300, 900], draws=1, condition="motion")
    assert all(r["alternatives"] == 3 and r["orbits"] == 3 for r in rows)
    assert any(abs(r["gain"]) > 1e-6 for r in rows)  # the trained motion embedding changes the prediction
    unet = load_components(run_dir / "checkpoint-6", components=("unet",))["unet"]
    with torch.no_grad():
        unet.motion_embedding.linear_2.weight.zero_()
        unet.motion_embedding.linear_2.bias.zero_()
    unet.save_pretrained(str(run_dir / "checkpoint-6" / "unet"))
    for r in bench.measure(run_dir, run_dir / "checkpoint-6", [300, 900], draws=1, condition="motion"):
        assert abs(r["gain"]) < 1e-6
