"""The paper's two-stage recipe on tiny models: curation serves both stages, stage 1 (the
3D-aware prior on static orbits) then stage 2 (4D) initialised from it, the frozen prior stored
in every stage-2 checkpoint and used by ``generate`` by default; joint condition dropout;
``mixed_precision=no`` parses."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion4d.app import main
from diffusion4d.config import load_config
from diffusion4d.io import read_clip, read_manifest, read_meta
from diffusion4d.models import UNet4DConditionModel, load_components
from diffusion4d.train import losses as L
from diffusion4d.train.orbit_dataset import OrbitDataset, load_orbit_records
from diffusion4d.testing.orbits import write_synthetic_dataset
from diffusion4d.train.train_config import DropoutConfig, TrainConfig
from diffusion4d.train.trainer import run

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "data.resolution=16", "data.num_frames=4", "model.tiny_block_out_channels=[16,32]", "model.tiny_attention_head_dim=4",
    "max_steps=2", "checkpoint_every=2", "batch_size=2", "num_threads=1", "report_to=none",
    "validation.at_end=false",
]


def _reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


# ---------------------------------------------------------------------------- condition dropout
def test_joint_dropout_realises_the_configured_fractions():
    n = 200_000
    p = DropoutConfig(all=0.1, text=0.1, image=0.2, static=0.3, motion=0.1)
    drop = L.condition_dropout(n, p, torch.Generator().manual_seed(0))
    every = torch.stack(list(drop.values())).all(0).float().mean().item()
    expected_every = 0.1 + 0.9 * (0.1 * 0.2 * 0.3 * 0.1)
    assert abs(every - expected_every) < 4e-3, every
    for name in ("text", "image", "static", "motion"):
        frac = drop[name].float().mean().item()
        assert abs(frac - (0.1 + 0.9 * getattr(p, name))) < 4e-3, (name, frac)
    # without the joint term, the all-dropped branch is almost never trained: what the joint term fixes
    none = L.condition_dropout(n, DropoutConfig(all=0.0, text=0.1, image=0.1, static=0.1, motion=0.1), torch.Generator().manual_seed(0))
    assert torch.stack(list(none.values())).all(0).float().mean().item() < 1e-3


def test_dropout_probabilities_are_validated():
    with pytest.raises(ValueError, match="dropout.all"):
        load_config(TrainConfig, None, ["dropout.all=1.5"])


def test_mixed_precision_no_parses(tmp_path):
    assert load_config(TrainConfig, REPO / "configs/train/t2v.yaml", ["mixed_precision=no"]).mixed_precision == "no"
    preset = tmp_path / "p.yaml"
    preset.write_text("mixed_precision: no\nreport_to: none\n")  # unquoted: YAML 1.1 reads it as false
    assert load_config(TrainConfig, preset).mixed_precision == "no"


def test_prior_stage_refuses_motion_conditioning():
    with pytest.raises(ValueError, match="model.motion_conditioning=false"):
        load_config(TrainConfig, REPO / "configs/train/tiny_prior3d.yaml", ["model.motion_conditioning=true"])


# ---------------------------------------------------------------------------- curation serves both stages
def test_curation_keeps_static_orbits_of_motionless_assets_for_the_prior(tmp_path):
    from test_curation_cli import _animated_cube

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "moving.glb").write_bytes(_animated_cube().to_glb())
    (tmp_path / "in" / "still.glb").write_bytes(_animated_cube(spin=False).to_glb())
    out = tmp_path / "out"
    assert main(["curate", "--input", str(tmp_path / "in"), "--output", str(out), "--frames", "4", "--resolution", "32",
                 "--workers", "0", "--orbits-per-asset", "2", "--s-low", "0.05", "--s-high", "0.999"]) == 0
    records = {r["uid"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert records["moving"]["status"] == "accepted" and records["moving"]["stages"] == ["prior3d", "4d"]
    assert records["still"]["status"] == "rejected" and records["still"]["reason"].startswith("no_animation")
    assert records["still"]["stages"] == ["prior3d"]
    meta = read_meta(out / "still")
    assert meta["modes"] == ["static", "static_1"] and not (out / "still" / "dynamic").exists()
    assert read_clip(out / "still" / "static").frames.shape == (4, 32, 32, 4)
    # the prior stage trains on both assets, the 4D stage on the moving one only
    assert sorted(r["uid"] for r in load_orbit_records(str(out), "prior3d")) == ["moving", "still"]
    assert [r["uid"] for r in load_orbit_records(str(out), "4d")] == ["moving"]
    item = OrbitDataset(str(out), 16, 4, stage="prior3d").load_pixels(1, 0)
    torch.testing.assert_close(item["frames"], item["static_frames"])
    assert item["motion_magnitude"] == 0.0


# ---------------------------------------------------------------------------- 4D UNet from a 4D base
def test_stage_two_unet_keeps_the_stage_one_weights():
    from diffusers import UNet3DConditionModel

    torch.manual_seed(0)
    base3d = UNet3DConditionModel(
        sample_size=8, in_channels=3, out_channels=3, down_block_types=("DownBlock3D", "CrossAttnDownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D", "UpBlock3D"), block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
    )
    stage1 = UNet4DConditionModel.from_base_model(base3d, num_frames=4, motion_conditioning=False)
    with torch.no_grad():  # a "trained" camera embedding and input conv
        for p in stage1.camera_embedding.parameters():
            p.normal_()
        stage1.conv_in.weight.normal_()
    stage2 = UNet4DConditionModel.from_base_model(stage1, motion_conditioning=True, static_conditioning=True)
    assert stage2.config.num_frames == 4 and stage2.motion_embedding is not None
    for name, p in stage1.state_dict().items():
        if name != "conv_in.weight":
            torch.testing.assert_close(stage2.state_dict()[name], p, msg=name)
    torch.testing.assert_close(stage2.conv_in.weight[:, :3], stage1.conv_in.weight)
    assert stage2.conv_in.weight[:, 3:].abs().max() == 0  # the new static-orbit channels start at 0
    # and back: a 4D base with modules the new model lacks drops them
    plain = UNet4DConditionModel.from_base_model(stage2, motion_conditioning=False, camera_conditioning=False, static_conditioning=False)
    assert plain.motion_embedding is None and plain.camera_embedding is None
    torch.testing.assert_close(plain.conv_in.weight, stage1.conv_in.weight)


# ---------------------------------------------------------------------------- both stages end to end
@pytest.fixture(scope="module")
def two_stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_stage")
    write_synthetic_dataset(root / "data", num_assets=3, num_frames=8, size=32, orbits=2)
    n = torch.get_num_threads()
    try:
        _reset_accelerate()
        s1 = load_config(TrainConfig, REPO / "configs/train/tiny_prior3d.yaml",
                         SMALL + [f"data.root={root / 'data'}", f"output_dir={root / 's1'}"])
        run(s1)
        _reset_accelerate()
        s2 = load_config(TrainConfig, REPO / "configs/train/tiny.yaml",
                         SMALL + [f"data.root={root / 'data'}", f"output_dir={root / 's2'}",
                                  f"model.base={root / 's1' / 'checkpoint-2'}", "model.text_encoder=base",
                                  # the demo's stage 2: frame-time embedding gated by m over the data's largest m
                                  "model.frame_time_conditioning=true", "model.frame_time_motion_reference=data",
                                  "model.frame_time_motion_anchor=first"])
        run(s2)
    finally:
        _reset_accelerate()
        torch.set_num_threads(n)
    return root


def test_stage_two_checkpoint_carries_the_frozen_prior(two_stages):
    root = two_stages
    s1, s2 = root / "s1" / "checkpoint-2", root / "s2" / "checkpoint-2"
    assert json.loads((s1 / "model_index.json").read_text())["prior_unet"] == [None, None]
    index = json.loads((s2 / "model_index.json").read_text())
    assert index["prior_unet"] == ["diffusion4d", "UNet4DConditionModel"]
    prior = load_components(s2, components=("prior_unet",))["prior_unet"]
    stage1 = load_components(s1, components=("unet",))["unet"]
    assert not prior.config.motion_conditioning and prior.config.camera_conditioning
    for name, p in stage1.state_dict().items():
        torch.testing.assert_close(prior.state_dict()[name], p, msg=name)
    # one copy on disk for the run: the checkpoint's prior files are hard links to <run>/prior_unet
    weights = s2 / "prior_unet" / "diffusion_pytorch_model.safetensors"
    assert os.stat(weights).st_ino == os.stat(root / "s2" / "prior_unet" / weights.name).st_ino
    unet = load_components(s2, components=("unet",))["unet"]
    assert unet.config.motion_conditioning and unet.motion_embedding is not None
    # stage 2 started from stage 1 (trained 2 steps since, so close but not equal)
    delta = max((unet.state_dict()[k].float() - v.float()).abs().max().item() for k, v in stage1.state_dict().items())
    assert 0 < delta < 0.5


def test_the_gate_reference_data_is_the_largest_training_motion_rounded_up(two_stages):
    data = two_stages / "data"
    largest = max(o["motion_magnitude"] for rec in read_manifest(data / "manifest.jsonl") for o in read_meta(data / rec["uid"])["orbits"])
    reference = load_components(two_stages / "s2" / "checkpoint-2", components=("unet",))["unet"].config.frame_time_motion_reference
    assert largest <= reference < largest * 1.1 and float(f"{reference:.2g}") == reference  # two significant digits, not below
    saved = load_config(TrainConfig, two_stages / "s2" / "config.yaml")  # the run's resolved config records the number
    assert saved.model.frame_time_motion_reference == reference


def test_a_resumed_run_keeps_its_checkpoints_gate_reference_when_the_data_changed(two_stages, tmp_path, caplog):
    """``frame_time_motion_reference: data`` is resolved once, when a run begins: resuming it after
    the data changed keeps the number its weights were trained with (and says so)."""
    import logging
    import shutil

    data, out = tmp_path / "data", tmp_path / "s2"
    shutil.copytree(two_stages / "data", data)
    shutil.copytree(two_stages / "s2", out)
    before = load_components(out / "checkpoint-2", components=("unet",))["unet"].config.frame_time_motion_reference
    for meta_path in data.glob("*/meta.json"):  # the data now moves 3x as much: a fresh run would resolve ~3x the number
        meta = json.loads(meta_path.read_text())
        for orbit in meta["orbits"]:
            orbit["motion_magnitude"] = 3 * orbit["motion_magnitude"]
        meta_path.write_text(json.dumps(meta))
    from diffusion4d.train.orbit_dataset import data_motion_reference

    assert data_motion_reference(str(data)) > 2 * before
    cfg = load_config(TrainConfig, out / "config.yaml", [f"data.root={data}", f"output_dir={out}", "max_steps=3",
                                                          "model.frame_time_motion_reference=data"])  # fmt: skip
    n = torch.get_num_threads()
    try:
        _reset_accelerate()
        with caplog.at_level(logging.WARNING):
            run(cfg, resume="latest")
    finally:
        _reset_accelerate()
        torch.set_num_threads(n)
    after = load_components(out / "checkpoint-3", components=("unet",))["unet"].config.frame_time_motion_reference
    assert after == before
    assert load_config(TrainConfig, out / "config.yaml").model.frame_time_motion_reference == before
    assert any("frame-time gate reference" in r.getMessage() and f"resuming with {before:g}" in r.getMessage() for r in caplog.records)
    # a checkpoint without a UNet config (written before pipeline folders were saved with it): the data's number
    from diffusion4d.train.trainer import gate_reference

    (tmp_path / "bare").mkdir()
    assert gate_reference(str(data), tmp_path / "bare") == data_motion_reference(str(data))


@pytest.mark.parametrize("value, expected", [(0.039825, 0.04), (0.0144, 0.015), (0.04, 0.04), (0.0101, 0.011), (0.00999, 0.01),
                                             (123.0, 130.0), (1.0, 1.0)])
def test_round_up_significant(value, expected):
    from diffusion4d.train.orbit_dataset import round_up_significant

    assert round_up_significant(value) == expected  # exact: the float of the decimal spelling


def test_the_gate_reference_data_needs_moving_training_orbits(tmp_path):
    from diffusion4d.errors import UserError
    from diffusion4d.train.orbit_dataset import data_motion_reference, round_up_significant

    write_synthetic_dataset(tmp_path / "data", num_assets=1, num_frames=4, size=16, orbits=1)
    for meta_path in (tmp_path / "data").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        for orbit in meta["orbits"]:
            orbit["motion_magnitude"] = 0.0
        meta["motion_magnitude"] = 0.0
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="frame_time_motion_reference=data"):
        data_motion_reference(str(tmp_path / "data"))
    with pytest.raises(ValueError):
        round_up_significant(0.0)
    with pytest.raises(ValueError, match="frame_time_motion_reference"):
        load_config(TrainConfig, REPO / "configs/train/tiny.yaml", ["model.frame_time_motion_reference=-1"])


def test_generate_uses_the_frozen_prior_by_default(two_stages, tmp_path):
    s2 = two_stages / "s2" / "checkpoint-2"
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(s2), "--prompt", "a red disc", "--steps", "2", "--output", str(out), "--name", "a"]) == 0
    assert json.loads((out / "a" / "generation.json").read_text())["prior"] == "separate"
    assert main(["generate", "--model", str(s2), "--prompt", "a red disc", "--steps", "2", "--output", str(out), "--name", "b",
                 "--prior", "self"]) == 0
    a = read_clip(out / "a" / "dynamic").frames.astype(np.int16)
    b = read_clip(out / "b" / "dynamic").frames.astype(np.int16)
    assert np.abs(a - b).max() > 0  # the two priors are different networks
    s1 = two_stages / "s1" / "checkpoint-2"
    assert main(["generate", "--model", str(s1), "--prompt", "a red disc", "--steps", "2", "--output", str(out), "--name", "c"]) == 0
    assert json.loads((out / "c" / "generation.json").read_text())["prior"] == "self"  # no prior in a stage-1 checkpoint


def test_a_hostile_manifest_cannot_make_training_read_outside_the_data_root(tmp_path):
    from diffusion4d.errors import UserError

    write_synthetic_dataset(tmp_path / "data", num_assets=1, num_frames=4, size=16, orbits=1)
    manifest = tmp_path / "data" / "manifest.jsonl"
    row = json.loads(manifest.read_text().splitlines()[0])
    row["uid"] = "../outside"
    manifest.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match="manifest uid"):
        load_orbit_records(str(tmp_path / "data"))


def test_outputs_follow_the_umask(tmp_path):
    from diffusion4d.io import atomic_write_json

    old = os.umask(0o022)
    try:
        write_synthetic_dataset(tmp_path / "data", num_assets=1, num_frames=4, size=16, orbits=1)
        atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    clip = next((tmp_path / "data").glob("*/dynamic"))
    assert clip.stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
