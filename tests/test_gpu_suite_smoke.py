"""benchmarks/gpu_suite.py: the --smoke run (every part at tiny size on CPU) passes and records
each part; without CUDA the real suite skips cleanly; results are only ever appended."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_suite.py"
PARTS = ("train", "sample", "curate", "recon")


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "DIFFUSION4D_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


def _load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_passes_and_records_every_part(tmp_path):
    results, summary_file = tmp_path / "RESULTS.md", tmp_path / "summary.json"
    results.write_text("# Benchmark results\n\nearlier section\n")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--results", str(results), "--json", str(summary_file), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=240, env=_env(), cwd=str(ROOT),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for part in PARTS:
        assert f"part {part}: ok" in proc.stdout
    assert "gpu suite: 4 / 4 parts ok" in proc.stdout
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nearlier section\n")  # appended, not rewritten
    assert "## GPU suite (smoke, CPU)" in text
    for part in PARTS:
        assert f"**{part}**" in text
    summary = json.loads(summary_file.read_text())
    assert summary["smoke"] and summary["failed"] == []
    train = summary["parts"]["train"]["result"]
    assert [r["batch"] for r in train["rows"]] == [1, 2] and all(r["status"] == "ok" for r in train["rows"])
    sample = summary["parts"]["sample"]["result"]
    assert sample["steps"] == 2 and sample["batched"]["total_s"] > 0 and sample["one_by_one"]["total_s"] > 0
    assert summary["parts"]["curate"]["result"]["resolution"] == 32
    recon = summary["parts"]["recon"]["result"]
    assert recon["input"] == "curated" and recon["preset"] == "test" and recon["backend"] == "torch"
    assert recon["psnr_heldout"] is not None
    compare = recon["render_compare"]
    assert compare["reference"] == "dense" and compare["max_abs_diff"] < 1e-4
    print(f"smoke run: {seconds:.1f} s")


def test_without_cuda_the_suite_skips():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the suite would run")
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120, env=_env(), cwd=str(ROOT))
    assert proc.returncode == 0 and "no CUDA device: GPU suite skipped" in proc.stdout


def test_append_results_only_appends(tmp_path):
    suite = _load_suite()
    path = tmp_path / "R.md"
    suite.append_results(path, "\n## one\n")
    suite.append_results(path, "\n## two\n")
    assert path.read_text() == "# Benchmark results\n\n## one\n\n## two\n"


def test_a_failing_part_is_recorded_and_the_others_run():
    suite = _load_suite()

    def boom():
        raise RuntimeError("broken part")

    bad = suite.run_part("train", boom, 5.0)
    good = suite.run_part("sample", lambda: {"x": 1}, 5.0)
    assert not bad["ok"] and "broken part" in bad["error"]
    assert good["ok"] and good["result"] == {"x": 1}
    slow = suite.run_part("recon", lambda: time.sleep(5), 0.5)
    assert not slow["ok"] and "PartTimeout" in slow["error"] and slow["seconds"] < 3
