"""The demo's stage bookkeeping: a rerun skips a finished stage only while the settings it read are
unchanged, and redoes every later stage after one is redone (fake stages: no model is trained)."""

import dataclasses
import json
from pathlib import Path

from diffusion4d.app.demo import STAGE_INPUTS, STAGES, DemoRun
from diffusion4d.app.demo_config import DemoConfig


def _run_all(out, cfg, calls, force=False):
    run = DemoRun(out, cfg, "cpu", force)
    for name, _ in STAGES:
        def fn(r, name=name):
            calls.append(name)
            folder = r.stage_folder(name)
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "made_with.json").write_text(json.dumps(r.stage_inputs(name)))
            return {"value": name}
        run.run_stage(name, fn)
    return run


def test_every_setting_is_an_input_of_some_stage():
    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    used = {k for keys in STAGE_INPUTS.values() for k in keys}
    assert used <= fields
    assert fields - used == {"threads"}  # the thread count changes speed, not results
    assert list(STAGE_INPUTS) == [name for name, _ in STAGES]


def test_changed_settings_redo_their_stage_and_every_later_one(tmp_path):
    calls = []
    _run_all(tmp_path, DemoConfig(), calls)
    assert calls == [name for name, _ in STAGES]

    calls.clear()
    _run_all(tmp_path, DemoConfig(), calls)
    assert calls == []  # nothing changed: every stage skipped

    calls.clear()
    stale = tmp_path / "generated" / "stale_sample"
    stale.mkdir()
    _run_all(tmp_path, DemoConfig(guidance=[0.0, 0.5]), calls)
    assert calls == ["generate", "reconstruct", "evaluate", "report"]
    assert not stale.exists()  # the redone stage started from an empty folder
    state = json.loads((tmp_path / "demo_state.json").read_text())["stages"]
    assert state["generate"]["inputs"]["guidance"] == [0.0, 0.5]
    assert json.loads((tmp_path / "curated" / "made_with.json").read_text())["frames"] == 8  # untouched

    calls.clear()
    _run_all(tmp_path, DemoConfig(guidance=[0.0, 0.5], threads=1), calls)
    assert calls == []

    calls.clear()
    _run_all(tmp_path, DemoConfig(guidance=[0.0, 0.5], frames=4), calls)
    assert calls == [name for name, _ in STAGES][1:]  # curation and everything after it

    calls.clear()
    _run_all(tmp_path, DemoConfig(guidance=[0.0, 0.5], frames=4, train_overrides=["loss.omega=0"]), calls)
    assert calls[0] == "train_prior"  # train_overrides reach both training stages, so both are redone

    calls.clear()
    _run_all(tmp_path, DemoConfig(guidance=[0.0, 0.5], frames=4, train_overrides=["loss.omega=0"], stage2_overrides=["loss.omega=1"]), calls)
    assert calls[0] == "train"  # stage2_overrides reach stage 2 only: the prior is kept


def test_a_state_from_before_inputs_were_recorded_is_reused(tmp_path):
    calls = []
    _run_all(tmp_path, DemoConfig(), calls)
    path = tmp_path / "demo_state.json"
    state = json.loads(path.read_text())
    for entry in state["stages"].values():
        del entry["inputs"]
    path.write_text(json.dumps(state))
    calls.clear()
    _run_all(tmp_path, DemoConfig(), calls)
    assert calls == []


def test_a_setting_added_later_counts_as_its_default(tmp_path):
    """A state recorded before a setting existed is reused while that setting is at its default,
    and redone from that stage on when it is not."""
    calls = []
    _run_all(tmp_path, DemoConfig(), calls)
    path = tmp_path / "demo_state.json"
    state = json.loads(path.read_text())
    del state["stages"]["assets"]["inputs"]["motion_shifts"]
    path.write_text(json.dumps(state))
    calls.clear()
    _run_all(tmp_path, DemoConfig(), calls)
    assert calls == []
    _run_all(tmp_path, DemoConfig(motion_shifts=[1]), calls)
    assert calls == [name for name, _ in STAGES]


def test_stage2_overrides_come_last_in_stage_2_only(tmp_path, monkeypatch):
    import diffusion4d.app.demo as demo
    import diffusion4d.train.finetune as finetune

    argvs = []
    monkeypatch.setattr(finetune, "main", lambda argv: argvs.append(list(argv)) or 0)
    monkeypatch.setattr(demo, "_latest_checkpoint", lambda folder: Path(folder) / "checkpoint-1")
    cfg = DemoConfig(train_overrides=["loss.omega=0", "loss.foreground_weight=1"], stage2_overrides=["loss.omega=5"])
    run = DemoRun(tmp_path, cfg, "cpu", False)
    demo.stage_train_prior(run)
    run.state["train_prior"] = {"checkpoint": "elsewhere/train_prior3d/checkpoint-1"}  # recorded from another working directory
    demo.stage_train(run)
    prior_argv, stage2_argv = argvs
    # stage 2 starts from the prior in this folder, whatever path the state recorded
    assert f"model.base={run.prior_dir / 'checkpoint-1'}" in stage2_argv
    assert "loss.omega=5" not in prior_argv and prior_argv[-2:] == cfg.train_overrides
    assert stage2_argv[-3:] == [*cfg.train_overrides, "loss.omega=5"]  # the trainer applies overrides in order: the last wins


def test_the_generate_stage_samples_with_the_configured_sampler(tmp_path, monkeypatch):
    import pytest

    import diffusion4d.app.demo as demo
    from diffusion4d.errors import UserError

    calls = []
    monkeypatch.setattr(demo, "_cli", lambda argv: calls.append(list(argv)))
    monkeypatch.setattr(demo, "_latest_checkpoint", lambda run: tmp_path / "checkpoint-1")
    monkeypatch.setattr(demo, "_accepted", lambda run: [{"uid": "a", "caption": "a red cube", "motion_magnitude": 0.01}])
    monkeypatch.setattr(demo, "probe_captions", lambda *a, **k: [])
    for sampler, steps in (("ddim", 20), ("dpm", 12)):
        calls.clear()
        demo.stage_generate(DemoRun(tmp_path, DemoConfig(sampler=sampler, sampling_steps=steps, prompts=1, sweep_prompts=1), "cpu", False))
        assert len(calls) == 2  # the caption sample and its sweep
        for argv in calls:
            assert argv[argv.index("--scheduler") + 1] == sampler and argv[argv.index("--steps") + 1] == str(steps)
    with pytest.raises(UserError, match="sampler: 'euler' is not one of 'ddim', 'dpm'"):
        demo.load_demo_config(None, False, ["sampler=euler"])
