"""Golden-file tests of the Markdown / CSV / LaTeX / JSON writers.

Regenerate after an intended format change with ``UPDATE_GOLDEN=1 pytest tests/test_eval_tables.py``
and review the diff.
"""

import json
import math
import os
from pathlib import Path

import pytest

from diffusion4d.eval.results import EvalResult, Summary, summarize
from diffusion4d.eval.tables import FORMATS, write_tables

GOLDEN = Path(__file__).parent / "golden" / "eval"
FILES = ["metrics.md", "summary.csv", "per_asset.csv", "motion.csv", "metrics.tex", "metrics.json"]


def _result() -> EvalResult:
    metrics = ["clip_f", "clip_o", "psnr", "ssim", "lpips", "fvd", "motion", "time"]
    r = EvalResult(task="Image-to-4D", reference="gt", methods=["ours_v2", "copy&paste"], metrics=metrics)
    r.per_asset = {
        "ours_v2": {
            "uid_a": {"clip_f": 0.91, "clip_o": 0.8, "psnr": 20.5, "ssim": 0.85, "lpips": None, "time": 12.0},
            "uid_b": {"clip_f": 0.87, "clip_o": 0.7, "psnr": 18.25, "ssim": 0.8, "lpips": None, "time": 14.0},
        },
        "copy&paste": {
            "uid_a": {"clip_f": 1.0, "clip_o": 1.0, "psnr": math.inf, "ssim": 1.0, "lpips": None, "time": None},
            "uid_b": {"clip_f": 1.0, "clip_o": 1.0, "psnr": math.inf, "ssim": 1.0, "lpips": None, "time": None},
        },
    }
    for method, rows in r.per_asset.items():
        r.summary[method] = {k: summarize([row[k] for row in rows.values()]) for k in ("clip_f", "clip_o", "psnr", "ssim", "lpips", "time")}
    r.summary["ours_v2"]["fvd"] = Summary(560.8, None, 2)
    r.summary["copy&paste"]["fvd"] = Summary(0.0, None, 2)
    r.summary["ours_v2"]["motion"] = Summary(1.0, 0.0, 1)
    r.summary["copy&paste"]["motion"] = None
    r.motion_groups = {
        "ours_v2": [{"prompt": "a dancing robot", "seed": 3, "samples": ["s0", "s1", "s2"], "requested": [0.0, 0.5, 1.0],
                     "measured": [0.0, 0.0123, 0.0456], "spearman": 1.0, "reason": ""}],
        "copy&paste": [],
    }
    for method in r.methods:
        r.mark_na(method, "lpips", "lpips: missing alexnet-owt-7be5be79.pth")
    r.mark_na("copy&paste", "motion", "no samples with generation.json motion_magnitude")
    r.note("lpips: n/a for every method. lpips: missing alexnet-owt-7be5be79.pth (searched: /w); download it")
    r.note("copy&paste: time n/a for 2/2 asset(s): no timings in generation.json / metrics.json")
    r.settings = {"reference": "gt", "clip_model": "tiny"}
    return r


def test_summarize_mean_std_and_inf():
    s = summarize([1.0, None, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 2)
    assert summarize([None]) is None
    inf = summarize([math.inf, 20.0])
    assert math.isinf(inf.mean) and inf.std is None


def test_writers_match_golden_files(tmp_path):
    written = write_tables(_result(), tmp_path, FORMATS)
    assert sorted(p.name for p in written) == sorted(FILES)
    update = os.environ.get("UPDATE_GOLDEN") == "1"
    for name in FILES:
        got = (tmp_path / name).read_text()
        golden = GOLDEN / name
        if update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(got)
        assert got == golden.read_text(), f"{name} differs from {golden} (UPDATE_GOLDEN=1 to regenerate)"


def test_json_is_strict_json_and_marks_na(tmp_path):
    write_tables(_result(), tmp_path, ["json"])
    text = (tmp_path / "metrics.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data["summary"]["copy&paste"]["psnr"]["mean"] == "inf"
    assert data["summary"]["ours_v2"]["lpips"] is None
    assert data["na"]["ours_v2"]["lpips"].startswith("lpips: missing")


def test_only_requested_formats_and_unknown_format(tmp_path):
    assert [p.name for p in write_tables(_result(), tmp_path / "a", ["tex"])] == ["metrics.tex"]
    with pytest.raises(ValueError, match="xlsx"):
        write_tables(_result(), tmp_path / "b", ["xlsx"])
