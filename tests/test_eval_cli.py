"""`python eval/run_metrics.py` / `diffusion4d evaluate` end to end on small synthetic clips.

Two "methods": an exact copy of the ground truth and a noised copy (standing in for a
reconstruction), plus a set of motion-control samples generated at several magnitudes.
"""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.io import atomic_write_json, frames_to_float, read_clip, write_clip, write_meta

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "eval" / "run_metrics.py"
N_FRAMES, SIZE = 8, 32


def _orbit(seed: int, motion: float = 1.0) -> np.ndarray:
    """[N, SIZE, SIZE, 4] uint8: a coloured square on transparent background bobbing by ``motion``."""
    rng = np.random.default_rng(seed)
    color = rng.integers(0, 255, 3)
    frames = np.zeros((N_FRAMES, SIZE, SIZE, 4), np.uint8)
    for i in range(N_FRAMES):
        c = int(round(SIZE / 2 + motion * 5 * np.sin(2 * np.pi * i / N_FRAMES)))
        frames[i, c - 6 : c + 6, 10:22, :3] = color
        frames[i, c - 6 : c + 6, 10:22, 3] = 255
    return frames


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    cams = orbit_trajectory("dynamic", N_FRAMES, width=SIZE, height=SIZE)
    rng = np.random.default_rng(0)
    for k in range(3):
        uid = f"asset{k}"
        clean = _orbit(k)
        write_clip(root / "gt" / uid / "dynamic", clean, cams)
        write_meta(root / "gt" / uid, {"uid": uid, "caption": f"a box number {k}"})
        noisy = clean.copy()
        noisy[..., :3] = np.clip(clean[..., :3].astype(int) + rng.integers(-40, 40, clean[..., :3].shape), 0, 255)
        write_clip(root / "recon" / uid / "dynamic", noisy, cams)
        atomic_write_json(root / "recon" / uid / "metrics.json", {"timings": {"coarse": 1.5, "fine": 2.0}})
        write_clip(root / "copy" / uid / "dynamic", clean, cams)
    for k in range(2):
        for m in (0.0, 0.25, 0.5, 1.0):
            name = f"prompt{k}_m{m}"
            write_clip(root / "gen" / name / "dynamic", _orbit(k, motion=m), cams)
            atomic_write_json(root / "gen" / name / "generation.json",
                              {"prompt": f"a box number {k}", "seed": 7, "motion_magnitude": m, "timings": {"total": 4.0}})
    return root


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """Make sure no real weights from this machine's caches leak into the run."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DIFFUSION4D_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _run_script(argv):
    """Run eval/run_metrics.py as `python eval/run_metrics.py` does, in this process."""
    old_argv, old_path = sys.argv[:], sys.path[:]
    sys.argv = [str(SCRIPT)] + argv
    sys.path.insert(0, str(SCRIPT.parent))  # what the interpreter does for a script
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv, sys.path[:] = old_argv, old_path
    return exit_info.value.code


def test_script_end_to_end_weight_metrics_na(data, tmp_path, no_weights, capsys):
    out = tmp_path / "out"
    code = _run_script(["--pred", f"recon={data / 'recon'}", "--pred", f"copy={data / 'copy'}", "--gt", str(data / "gt"),
                        "--output", str(out)])
    assert code == 0
    for name in ("metrics.md", "summary.csv", "per_asset.csv", "motion.csv", "metrics.tex", "metrics.json"):
        assert (out / name).is_file()
    res = json.loads((out / "metrics.json").read_text())
    assert res["methods"] == ["recon", "copy"]
    copy, recon = res["summary"]["copy"], res["summary"]["recon"]
    assert copy["psnr"]["mean"] == "inf" and copy["ssim"]["mean"] == pytest.approx(1.0)
    # the noised copy: PSNR equals the direct formula on white-composited RGB
    from diffusion4d.io import read_clip

    expected = []
    for k in range(3):
        a = frames_to_float(read_clip(data / "recon" / f"asset{k}" / "dynamic").frames).astype(np.float64)
        b = frames_to_float(read_clip(data / "gt" / f"asset{k}" / "dynamic").frames).astype(np.float64)
        expected.append(np.mean([10 * np.log10(1 / np.mean((x - y) ** 2)) for x, y in zip(a, b)]))
    assert recon["psnr"]["mean"] == pytest.approx(np.mean(expected), rel=1e-4)
    assert 0 < recon["ssim"]["mean"] < 1
    assert recon["time"]["mean"] == pytest.approx(3.5)
    for metric in ("clip_f", "clip_o", "clip_text", "lpips", "fvd"):
        assert recon[metric] is None and copy[metric] is None
        assert metric in res["na"]["recon"]
    notes = "\n".join(res["notes"])
    assert "alexnet-owt-7be5be79.pth" in notes and "i3d_torchscript.pt" in notes and "openai/clip-vit-base-patch32" in notes
    md = (out / "metrics.md").read_text()
    assert "| recon |" in md and "n/a" in md and "## Notes" in md
    printed = capsys.readouterr().out
    assert "copy: " in printed and "PSNR=inf" in printed


def test_strict_missing_weights_exits_2_with_one_line(data, tmp_path):
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "th"), HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    env.pop("DIFFUSION4D_WEIGHTS", None)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--pred", f"recon={data / 'recon'}", "--gt", str(data / "gt"), "--metrics", "psnr,lpips",
         "--strict", "--output", str(tmp_path / "o"), "-q"],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("run_metrics.py: error: lpips: missing alexnet-owt-7be5be79.pth")
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # ~10-30 s on 2 loaded cores: builds a tiny CLIP, a random AlexNet and a tiny I3D
def test_all_metrics_with_tiny_stand_in_weights(data, tmp_path, no_weights):
    from diffusion4d.app import main
    from diffusion4d.eval.testing import write_random_lpips_backbone, write_tiny_clip, write_tiny_i3d

    weights = tmp_path / "weights"
    clip_dir = write_tiny_clip(weights / "tiny-clip")
    write_random_lpips_backbone(weights / "alexnet-owt-7be5be79.pth")
    write_tiny_i3d(weights / "i3d_pretrained_400.pt", width=1 / 32)
    out = tmp_path / "out"
    with torch.backends.mkldnn.flags(enabled=False):  # oneDNN is slow for 2-channel 3D convolutions
        code = main(["evaluate", "--pred", f"recon={data / 'recon'}", "--pred", f"copy={data / 'copy'}",
                     "--pred", f"gen={data / 'gen'}", "--gt", str(data / "gt"), "--weights-dir", str(weights),
                     "--clip-model", str(clip_dir), "--fvd-resolution", "32", "--device", "cpu", "--output", str(out),
                     "--format", "json,md", "--task", "Synthetic"])
    assert code == 0
    res = json.loads((out / "metrics.json").read_text())
    copy, recon, gen = res["summary"]["copy"], res["summary"]["recon"], res["summary"]["gen"]
    assert copy["clip_f"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert copy["clip_o"]["mean"] == pytest.approx(1.0, abs=1e-5)
    assert copy["lpips"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert copy["fvd"]["mean"] == pytest.approx(0.0, abs=1e-6) and copy["fvd"]["n"] == 3
    assert -1 <= copy["clip_text"]["mean"] <= 1
    assert recon["clip_o"]["mean"] < 1.0 and recon["lpips"]["mean"] > 0 and recon["fvd"]["mean"] > 0
    assert res["settings"]["i3d_detector"].endswith("i3d_pretrained_400.pt")
    # motion control: larger requested m -> larger measured deviation from the m = 0 sample
    groups = res["motion_groups"]["gen"]
    assert len(groups) == 2
    for g in groups:
        assert g["requested"] == [0.0, 0.25, 0.5, 1.0]
        assert g["measured"][0] == 0.0 and np.all(np.diff(g["measured"]) > 0)
        assert g["spearman"] == pytest.approx(1.0)
    assert gen["motion"]["mean"] == pytest.approx(1.0) and gen["motion"]["n"] == 2
    assert res["summary"]["recon"]["motion"] is None
    assert "Motion control" in (out / "metrics.md").read_text()


def test_library_entry_and_script_module(data, tmp_path, no_weights):
    from diffusion4d.eval.api import run_metrics

    result = run_metrics({"gen": data / "gen"}, metrics=["motion", "time"], output=None)
    assert result.summary["gen"]["time"].mean == pytest.approx(4.0)
    assert result.summary["gen"]["motion"].mean == pytest.approx(1.0)
    import diffusion4d.eval.run_metrics as script  # importing the script module runs nothing

    assert script.main is not None
    from diffusion4d.eval import evaluate, EvalConfig

    assert evaluate(EvalConfig(preds={"gen": str(data / "gen")}, metrics=["time"])).summary["gen"]["time"].n == 8


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--pred", "nodir"], "--pred expects NAME=DIR"),
        (["--pred", "a=/does/not/exist"], "no such folder"),
        (["--metrics", "psnr,bogus"], "unknown metric(s) bogus"),
        (["--metrics", "psnr"], "need --gt DIR"),
    ],
)
def test_bad_input_is_one_line_exit_2(data, tmp_path, capsys, argv, message):
    from diffusion4d.eval.cli import main

    if argv[:1] != ["--pred"]:
        argv = ["--pred", f"recon={data / 'recon'}"] + argv
    if "--metrics" in argv and "psnr,bogus" in argv:
        argv += ["--gt", str(data / "gt")]
    code = main(argv + ["--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_silhouette_iou_and_colour_match_metrics(data, tmp_path, no_weights):
    """``iou``: per-frame silhouette IoU with the asset's ground truth; ``colour``: share of samples whose
    mean foreground colour is nearest to their own asset's among all accepted ground-truth assets."""
    from diffusion4d.eval.api import run_metrics

    cams = orbit_trajectory("dynamic", N_FRAMES, width=SIZE, height=SIZE)
    swapped = tmp_path / "swapped"
    for k in range(3):  # asset k shows asset (k+1)%3's colour, shifted down by 3 px
        frames = np.roll(_orbit((k + 1) % 3), 3, axis=1)
        write_clip(swapped / f"asset{k}" / "dynamic", frames, cams)
    result = run_metrics({"copy": data / "copy", "swapped": swapped}, gt=data / "gt", metrics=["iou", "colour"], output=None)
    assert result.summary["copy"]["iou"].mean == pytest.approx(1.0)
    assert result.summary["copy"]["colour"].mean == pytest.approx(1.0) and result.summary["copy"]["colour"].n == 3
    assert result.summary["swapped"]["colour"].mean == pytest.approx(0.0)
    # per sample, the rank of its own asset and the nearest one are kept (the demo's report table reads them)
    swaps = {m["uid"]: m for m in result.colour_matches["swapped"]["per_sample"]}
    assert result.colour_matches["swapped"]["references"] == 3
    assert {uid: m["nearest"] for uid, m in swaps.items()} == {f"asset{k}": f"asset{(k + 1) % 3}" for k in range(3)}
    assert all(m["rank"] > 1 for m in swaps.values())
    assert all(m["rank"] == 1 for m in result.to_json()["colour_matches"]["copy"]["per_sample"])
    # 12x12 squares shifted by 3 rows: intersection 9x12, union 15x12
    assert result.summary["swapped"]["iou"].mean == pytest.approx(9 / 15, abs=1e-6)


def test_view_iou_gain_metric(data, no_weights):
    """``view_iou``: the copies score their ground truth's own variation over the orbit, per asset."""
    from diffusion4d.eval.api import run_metrics
    from diffusion4d.metrics import to_tensor, view_iou_gain

    result = run_metrics({"copy": data / "copy"}, gt=data / "gt", metrics=["view_iou"], output=None)
    for uid, row in result.per_asset["copy"].items():
        gt = to_tensor(frames_to_float(read_clip(data / "gt" / uid / "dynamic").frames))
        assert row["view_iou"] == pytest.approx(view_iou_gain(gt, gt)) and row["view_iou"] > 0.1  # the square bobs


def test_colour_match_ignores_renders_curation_rejected(data, tmp_path, no_weights):
    """A rejected asset is not part of the curated set: it does not compete in the colour match,
    even when its colour ties with a sample's own asset (and its uid sorts first)."""
    import shutil

    from diffusion4d.eval.api import run_metrics

    gt = tmp_path / "gt"
    shutil.copytree(data / "gt", gt)
    cams = orbit_trajectory("dynamic", N_FRAMES, width=SIZE, height=SIZE)
    write_clip(gt / "a_rejected" / "dynamic", _orbit(0), cams)
    write_meta(gt / "a_rejected", {"uid": "a_rejected", "caption": "a rejected box", "status": "rejected"})
    result = run_metrics({"copy": data / "copy"}, gt=gt, metrics=["colour"], output=None)
    assert result.summary["copy"]["colour"].mean == pytest.approx(1.0) and result.summary["copy"]["colour"].n == 3
    write_meta(gt / "a_rejected", {"uid": "a_rejected", "caption": "a rejected box", "status": "accepted"})
    result = run_metrics({"copy": data / "copy"}, gt=gt, metrics=["colour"], output=None)
    assert result.summary["copy"]["colour"].mean == pytest.approx(2 / 3)  # accepted, it wins the tie for asset0


def test_motion_groups_record_identity_across_the_sweep(data, no_weights):
    from diffusion4d.eval.api import run_metrics

    result = run_metrics({"gen": data / "gen"}, metrics=["motion"], output=None)
    for group in result.motion_groups["gen"]:
        assert group["identity_iou"] == pytest.approx([1.0] * 4)  # frame 0 is the same square for every m
        assert group["identity_colour"] == pytest.approx([0.0] * 4, abs=1e-9)
        assert group["colour_drift"] == pytest.approx([0.0] * 4, abs=1e-9)  # one colour in every frame


def test_colour_drift_sees_an_object_that_changes_colour_after_frame_0():
    """Frame 0 alone cannot tell a sample that keeps its object from one that turns into another over the
    orbit; colour drift is the largest distance of a frame's mean object colour from frame 0's."""
    from diffusion4d.eval.motion_control import colour_drift

    frames = np.ones((4, 8, 8, 3))
    frames[:, 2:6, 2:6] = [0.1, 0.1, 0.1]  # a dark square
    assert colour_drift(frames) == pytest.approx(0.0)
    frames[3, 2:6, 2:6] = [0.8, 0.1, 0.1]  # turns red in the last frame
    assert colour_drift(frames) == pytest.approx(0.7)
    frames[1:, 2:6, 2:6] = 1.0  # the object vanishes after frame 0: no verdict, not 0
    assert colour_drift(frames) is None
