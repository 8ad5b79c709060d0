"""The demo's generalisation probe: captions recombining training attributes never seen together."""

import json

from diffusion4d.app.demo import probe_captions


def _assets(tmp_path, rows):
    path = tmp_path / "assets.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


ROWS = [
    {"uid": "a", "colour": "red", "shape": "cube", "caption": "a red cube spinning"},
    {"uid": "b", "colour": "blue", "shape": "cone", "caption": "a blue striped cone pulsing"},
    {"uid": "c", "colour": "green", "shape": "sphere", "caption": "a green sphere moving in a circle"},
]


def test_probe_recombines_attributes_never_seen_together(tmp_path):
    folder = _assets(tmp_path, ROWS)
    probes = probe_captions(folder, {"a", "b", "c"}, count=50, seed=0)
    seen_pairs = {("red", "cube"), ("blue", "cone"), ("green", "sphere")}
    motions = {"a": "spinning", "b": "pulsing", "c": "moving in a circle"}
    assert probes, "three assets give several recombinations"
    for p in probes:
        colour, shape = p["caption"].split()[1:3]
        assert (colour, shape) not in seen_pairs
        src = p["from"]
        assert src["shape"] != src["motion"], "the shape's own motion is a seen pair"
        assert p["caption"] == f"a {colour} {shape} {motions[src['motion']]}"
    assert len({p["caption"] for p in probes}) == len(probes)
    assert probe_captions(folder, {"a", "b", "c"}, count=2, seed=0) == probes[:2]  # deterministic


def test_probe_uses_only_accepted_assets_and_tolerates_missing_files(tmp_path):
    folder = _assets(tmp_path, ROWS)
    assert probe_captions(folder, {"a"}, count=3, seed=0) == []  # one asset: nothing to recombine
    assert probe_captions(tmp_path / "nothing", {"a"}, count=3, seed=0) == []


def test_demo_targets_lower_and_upper_bounds():
    """Quality targets are met at or above their bar; peak memory only below it; missing = None."""
    from diffusion4d.app.demo_sections import targets

    metrics = {
        "prompts": {"iou_mean": 0.6, "colour_share": 0.4},
        "motion_control": {"spearman_mean": 1.0},
        "reconstruction": {"generated": {"psnr_heldout": 21.9}},
        "peak_memory_gb": 4.0,
    }
    t = targets(metrics)
    assert t["iou"]["met"] is True and t["colour"]["met"] is False and t["spearman"]["met"] is True
    assert t["recon_psnr"]["met"] is False and t["identity_iou"]["met"] is None
    assert t["peak_memory_gb"] == {"value": 4.0, "target": 4.0, "met": False}  # must stay below 4 GiB
    metrics["peak_memory_gb"] = 1.4
    assert targets(metrics)["peak_memory_gb"]["met"] is True
    assert "wall_minutes" not in t  # no time budget in the config: no time verdict
    metrics.update(time_target_minutes=10, wall_minutes=10.0)
    assert targets(metrics)["wall_minutes"] == {"value": 10.0, "target": 10, "met": True}  # at most 10 minutes
    metrics["wall_minutes"] = 10.02
    assert targets(metrics)["wall_minutes"]["met"] is False
    metrics["wall_minutes"] = None  # a resumed run: not measured
    assert targets(metrics)["wall_minutes"]["met"] is None


def test_demo_wall_time_only_for_a_run_that_did_every_stage(tmp_path):
    """The time verdict reads this process's age, which is the demo's wall time only when no stage was
    reused from an earlier invocation: a skipped stage marks the run as resumed."""
    from diffusion4d.app.demo import DemoRun, process_wall_seconds
    from diffusion4d.app.demo_config import DemoConfig
    from diffusion4d.app.demo_sections import demo_wall_minutes

    assert 0 < process_wall_seconds() < 7 * 24 * 3600
    run = DemoRun(tmp_path, DemoConfig(), "cpu", force=False)
    run.run_stage("assets", lambda r: {"assets": 0})
    assert not run.resumed and 0 < demo_wall_minutes(run) <= process_wall_seconds() / 60 + 0.01
    again = DemoRun(tmp_path, DemoConfig(), "cpu", force=False)
    assert again.run_stage("assets", lambda r: {"assets": 1})["assets"] == 0  # done before: skipped
    assert again.resumed and demo_wall_minutes(again) is None


def test_variants_are_training_data_only(tmp_path):
    """The demo samples and scores the original assets; `assets --amplitudes` and `--motion-shifts`
    variants (and files without the fields, older asset folders) are told apart by assets.jsonl."""
    from diffusion4d.app.demo import training_variants
    from diffusion4d.data_curation.procedural import generate_assets

    generate_assets(tmp_path / "a", 2, seed=0, amplitudes=[1.0, 0.5], motion_shifts=[1], show_progress=False)
    assert training_variants(tmp_path / "a") == {"proc-s0-0000-a0.5", "proc-s0-0001-a0.5", "proc-s0-0000-m0001", "proc-s0-0001-m0000"}
    assert training_variants(_assets(tmp_path, ROWS)) == set()  # no amplitude_scale: all full
    assert training_variants(tmp_path / "missing") == set()


def test_probe_avoids_combinations_trained_as_variants(tmp_path):
    """A motion swap trains "a red cube pulsing": the probe must not offer it as unseen."""
    swap = {"uid": "a-m", "colour": "red", "shape": "cube", "caption": "a red cube pulsing"}
    folder = _assets(tmp_path, ROWS + [swap])
    plain = {p["caption"] for p in probe_captions(folder, {"a", "b", "c"}, count=50, seed=0)}
    with_swap = probe_captions(folder, {"a", "b", "c"}, count=50, seed=0, trained={"a-m"})
    assert "a blue cube pulsing" in plain  # cube + pulsing never together in the originals
    assert "a blue cube pulsing" not in {p["caption"] for p in with_swap}
    assert {p["caption"] for p in with_swap} < plain
    assert all(set(p["from"].values()) <= {"a", "b", "c"} for p in with_swap)  # parts come from the originals


def test_report_says_which_variants_the_training_data_holds(tmp_path):
    """Section 1 names the amplitude variants and motion swaps the run actually generated, and nothing otherwise."""
    import html
    from types import SimpleNamespace

    from diffusion4d.app.demo_sections import _variants_paragraph
    from diffusion4d.data_curation.procedural import generate_assets

    def text(**kw):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        generate_assets(folder, 2, seed=0, show_progress=False, **kw)
        return html.unescape(_variants_paragraph(SimpleNamespace(assets_dir=folder)))

    assert text() == ""
    both = text(amplitudes=[1.0, 0.5, 0.2], motion_shifts=[1])
    assert "<uid>-a0.5 / -a0.2" in both and "-m<index>" in both and "training data only" in both
    only_swaps = text(motion_shifts=[1])
    assert "-m<index>" in only_swaps and "-a" not in only_swaps.replace("-m<index>", "")
    assert _variants_paragraph(SimpleNamespace(assets_dir=tmp_path / "missing")) == ""


def test_report_colour_check_is_the_one_evaluate_recorded():
    """The report's colour column and count come from ``diffusion4d evaluate``'s metrics.json, for the
    demo's own samples only (a folder of another run in the same directory does not count)."""
    from diffusion4d.app.demo_sections import _colour_check

    evaluation = {"colour_matches": {"diffusion4d_tiny": {"references": 4, "per_sample": [
        {"uid": "a", "rank": 1, "nearest": "a"}, {"uid": "b", "rank": 3, "nearest": "c"}, {"uid": "stray", "rank": 1, "nearest": "stray"}]}}}
    check = _colour_check(evaluation, [{"uid": "a"}, {"uid": "b"}])
    assert (check["matched"], check["samples"], check["references"]) == (1, 2, 4)
    assert [m["nearest"] for m in check["per_sample"]] == ["a", "c"]
    assert _colour_check({}, [{"uid": "a"}]) is None  # no colour record (evaluate could not rank): no verdict
