"""benchmarks/demo_seeds.py: each (training seed, sampling seed) pair reruns only the stages its
seeds reach, on links to the demo's finished stages, and the targets are counted over the pairs.
Fake stages (no model is trained); the demo's own stage bookkeeping decides what runs."""

import importlib.util
import json
from pathlib import Path

import pytest

from diffusion4d.app.demo import STAGES, DemoRun, load_demo_config
from diffusion4d.app.demo_sections import SAMPLES_METHOD
from diffusion4d.config import save_config

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("demo_seeds", REPO / "benchmarks" / "demo_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_demo(out: Path, overrides, calls):
    """The demo's stage loop with fake stages; the report writes metrics.json with targets that
    depend on the noise seed (IoU met for seed 0 only) and on the training seed (colour)."""
    cfg = load_demo_config(str(out / "demo_config.yaml") if (out / "demo_config.yaml").exists() else None, False, list(overrides))
    save_config(cfg, out / "demo_config.yaml")
    run = DemoRun(out, cfg, "cpu", False)
    for name, _ in STAGES:
        def fn(r, name=name):
            calls.append((out.name, name))
            folder = r.stage_folder(name)
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "made_with.json").write_text(json.dumps(r.stage_inputs(name)))
            if name == "report":
                noise = r.cfg.seed if r.cfg.sampling_seed is None else r.cfg.sampling_seed
                stage2 = json.loads((r.train_dir / "made_with.json").read_text())["stage2_overrides"]
                trained = any(item.startswith("seed=") for item in stage2)  # another training seed
                targets = {
                    "iou": {"value": 0.7 if noise == 0 else 0.5, "target": 0.6, "met": noise == 0},
                    "colour": {"value": 0.6 if trained else 0.8, "target": 0.8, "met": not trained},
                    "spearman": {"value": 1.0, "target": 0.9, "met": True},
                    "identity_iou": {"value": 0.9, "target": 0.8, "met": True},
                    "recon_psnr": {"value": None, "target": 22.0, "met": None},
                    "peak_memory_gb": {"value": 9.0, "target": 4.0, "met": False},
                }
                motion = {"groups": [{"measured": [0.0, 1e-3 if noise == 0 else 2e-3]}]}
                (r.out / "metrics.json").write_text(json.dumps({"targets": targets, "motion_control": motion}))
                (r.eval_dir / "metrics.json").write_text(json.dumps({"summary": {SAMPLES_METHOD: {"view_iou": {"mean": 0.05 if noise == 0 else 0.01}}}}))
            return {}
        run.run_stage(name, fn)


def _finished_demo(tmp_path, calls):
    """A finished fake demo folder."""
    demo = tmp_path / "demo"
    demo.mkdir()
    _fake_demo(demo, [], calls)
    return demo


def test_pairs_rerun_only_what_their_seeds_reach(tmp_path, monkeypatch):
    ds = _module()
    calls = []
    demo = _finished_demo(tmp_path, calls)
    before = (demo / "generated" / "made_with.json").read_text()

    def fake_run_pair(demo_folder, folder, overrides):
        _fake_demo(folder, overrides, calls)

    monkeypatch.setattr(ds, "run_pair", fake_run_pair)
    calls.clear()
    results = tmp_path / "RESULTS.md"
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0,1000", "--train-seeds", "0,5", "--results", str(results)]) == 0
    later = ["generate", "reconstruct", "evaluate", "report"]
    # the demo's own pair (train 0, noise 0) is read from its metrics.json
    assert calls == [("train0_noise1000", s) for s in later] \
        + [("train5_noise0", s) for s in ["train", *later]] + [("train5_noise1000", s) for s in later]
    study = demo / "seed_study" / "demo"
    assert not (study / "train0_noise0").exists()
    assert (study / "train0_noise1000" / "train").is_symlink()  # the demo's own stage 2
    assert (study / "train5_noise1000" / "train").resolve() == (study / "train5_noise0" / "train").resolve()  # trained once per seed
    assert json.loads((study / "train5_noise0" / "train" / "made_with.json").read_text())["stage2_overrides"] == [*load_demo_config(None, False, []).stage2_overrides, "seed=5"]
    assert (study / "train0_noise1000" / "curated").resolve() == (demo / "curated").resolve()
    assert (demo / "generated" / "made_with.json").read_text() == before  # the demo's own results are untouched
    assert json.loads((study / "train0_noise1000" / "generated" / "made_with.json").read_text())["sampling_seed"] == 1000
    text = results.read_text()
    assert "| **met on** | | 2 of 4 | 2 of 4 | 4 of 4 | 4 of 4 | 0 of 0 | 0 of 4 | | | |" in text  # unmeasured recon: no pair passes all
    assert "| mean | | 0.6 | 0.7 | 1 | 0.9 | n/a | | 0.030 | | |" in text
    # what no target measures: the samples' view IoU gain and each sweep's motion at the largest m, per pair
    assert "| 5 | 1000 | 0.5 (x) | 0.6 (x) | 1 | 0.9 | n/a (x) | no | 0.010 | 2.0e-03 |" in text

    # a rerun reads finished pairs back: nothing runs again
    calls.clear()
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0,1000", "--train-seeds", "0,5"]) == 0
    assert calls == []


def test_a_study_of_a_later_stage_reuses_the_stage_2_an_earlier_study_trained(tmp_path, monkeypatch):
    """A generation setting studied after a seed study trains nothing again: each training seed's
    stage 2 is linked from the earlier study's pair that trained it with the same settings; a
    changed stage-2 setting still trains anew."""
    ds = _module()
    calls = []
    demo = _finished_demo(tmp_path, calls)
    monkeypatch.setattr(ds, "run_pair", lambda demo_folder, folder, overrides: _fake_demo(folder, overrides, calls))
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0", "--train-seeds", "0,5"]) == 0
    first = demo / "seed_study" / "demo" / "train5_noise0"
    calls.clear()
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0", "--train-seeds", "0,5", "--set", "guidance=[2.0, 0.25]"]) == 0
    assert [name for _, name in calls].count("train") == 0 and [name for _, name in calls].count("generate") == 2
    study = demo / "seed_study" / ds.study_label(["guidance=[2.0, 0.25]"])
    assert (study / "train5_noise0" / "train").resolve() == (first / "train").resolve()
    assert (study / "train0_noise0" / "train").resolve() == (demo / "train").resolve()
    calls.clear()
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0", "--train-seeds", "5", "--set", 'stage2_overrides=["loss.omega=3"]']) == 0
    assert [name for _, name in calls].count("train") == 1


def test_a_pair_reruns_what_followed_a_linked_stage_that_was_redone(tmp_path, monkeypatch):
    """A pair's own later stages are kept only while the stage 2 they were made from is still the one
    it links to: after the demo's stage 2 is redone, relinking it drops them, so they run again."""
    from diffusion4d.io.records import DemoState

    ds = _module()
    calls = []
    demo = _finished_demo(tmp_path, calls)
    monkeypatch.setattr(ds, "run_pair", lambda demo_folder, folder, overrides: _fake_demo(folder, overrides, calls))
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0,1000"]) == 0
    pair = demo / "seed_study" / "demo" / "train0_noise1000"
    assert (pair / "generated").is_dir()
    shared = {**{name: demo for name in ds.SHARED_STAGES}, "train": demo}
    ds.prepare_pair(pair, shared)  # nothing changed: everything kept
    assert "generate" in DemoState.read(pair / "demo_state.json").stages and (pair / "generated").is_dir()

    _fake_demo(demo, ['stage2_overrides=["loss.omega=3"]'], calls)  # the demo's stage 2 redone
    ds.prepare_pair(pair, shared)
    stages = DemoState.read(pair / "demo_state.json").stages
    assert not {"generate", "reconstruct", "evaluate", "report"} & set(stages) and not (pair / "generated").exists()
    assert stages["train"] == DemoState.read(demo / "demo_state.json").stages["train"]


def test_a_shared_stage_that_would_be_redone_is_refused(tmp_path):
    ds = _module()
    demo = _finished_demo(tmp_path, [])
    pair = tmp_path / "pair"
    shared = {name: demo for name in ds.SHARED_STAGES}
    ds.prepare_pair(pair, shared)
    cfg = load_demo_config(str(demo / "demo_config.yaml"), False, ["frames=4"])
    with pytest.raises(SystemExit, match="'curate' .* would be redone .*frames"):
        ds.check_reused(pair, cfg, list(shared))
    assert (demo / "curated" / "made_with.json").exists()


def test_study_labels_of_long_settings_stay_apart():
    ds = _module()
    assert ds.study_label([]) == "demo" and ds.study_label(["guidance=[2.0, 0.5]"]) == "guidance=-2.0--0.5-"
    long = 'stage2_overrides=["optim.lr_scheduler=cosine","model.frame_time_conditioning=true","loss.frame_deviation_weight={}"]'
    a, b = ds.study_label([long.format(1)]), ds.study_label([long.format(2)])
    assert a != b and len(a) == len(b) == 100


def test_training_seed_and_pair_overrides():
    ds = _module()
    cfg = load_demo_config(None, False, ['stage2_overrides=["loss.omega=1", "seed=3"]'])
    assert ds.training_seed(cfg) == 3
    assert ds.pair_overrides(cfg, 3, 7) == ["sampling_seed=7"]
    assert ds.pair_overrides(cfg, 3, 0) == []  # the demo's own seeds: no override, so its own run is recognised
    pair = load_demo_config(None, False, ['stage2_overrides=["loss.omega=1", "seed=3"]', *ds.pair_overrides(cfg, 4, 7)])
    assert pair.stage2_overrides == ["loss.omega=1", "seed=3", "seed=4"] and pair.sampling_seed == 7
    assert ds.training_seed(pair) == 4


def test_a_candidate_setting_is_studied_on_the_same_data(tmp_path, monkeypatch):
    ds = _module()
    calls = []
    demo = _finished_demo(tmp_path, calls)
    monkeypatch.setattr(ds, "run_pair", lambda demo_folder, folder, overrides: _fake_demo(folder, overrides, calls))
    later = ["generate", "reconstruct", "evaluate", "report"]

    # a sampling setting: every pair, the demo's own seeds included, reuses the demo's stage 2
    calls.clear()
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0,1000", "--set", "guidance=[2.0, 0.5]"]) == 0
    assert calls == [("train0_noise0", s) for s in later] + [("train0_noise1000", s) for s in later]
    study = demo / "seed_study" / "guidance=-2.0--0.5-"
    assert (study / "train0_noise0" / "train").resolve() == (demo / "train").resolve()

    # a stage-2 setting: stage 2 is trained once, in the first pair, and the next pair links to it
    calls.clear()
    assert ds.main(["--demo", str(demo), "--sampling-seeds", "0,1000", "--set", 'stage2_overrides=["loss.omega=1"]']) == 0
    assert calls == [("train0_noise0", s) for s in ["train", *later]] + [("train0_noise1000", s) for s in later]
    study = next(p for p in (demo / "seed_study").iterdir() if "omega" in p.name)
    made = json.loads((study / "train0_noise1000" / "train" / "made_with.json").read_text())
    assert made["stage2_overrides"] == ["loss.omega=1"] and (study / "train0_noise1000" / "train").is_symlink()
