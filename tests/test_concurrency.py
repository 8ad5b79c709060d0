"""One writer per curation output: the lock, stale temporaries, and render settings on rerun."""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from diffusion4d.io import read_manifest

FAST = ["--frames", "4", "--resolution", "16", "--workers", "0", "--orbits-per-asset", "1",
        "--modes", "dynamic,static", "--set", "rules.ssim=false"]
CLI = [sys.executable, "-m", "diffusion4d", "-q", "curate"]


def _env():
    env = dict(os.environ, DIFFUSION4D_NO_PROGRESS="1", OMP_NUM_THREADS="1")
    return env


def _curate(out, *extra, n=3, capsys=None):
    from diffusion4d.app import main

    try:
        code = main(["-q", "curate", "--procedural", str(n), "--output", str(out), *FAST, *extra])
    except SystemExit as exc:
        code = exc.code
    return code


def _rows(out):
    return Counter(r["uid"] for r in read_manifest(Path(out) / "manifest.jsonl", latest_only=False))


def test_held_lock_refuses_with_one_line_naming_it(tmp_path, capsys):
    from filelock import FileLock

    out = tmp_path / "out"
    out.mkdir()
    with FileLock(str(out / ".curate.lock")):
        start = time.monotonic()
        code = _curate(out, "--wait", "0.5")
        waited = time.monotonic() - start
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("diffusion4d curate: error: another curate run")
    assert str(out / ".curate.lock") in err[0] and waited >= 0.5
    assert sorted(p.name for p in out.iterdir()) == [".curate.lock"]  # nothing written while refused


def test_two_concurrent_runs_one_row_per_asset(tmp_path):
    out = tmp_path / "out"
    cmd = CLI + ["--procedural", "3", "--output", str(out), *FAST]
    a = subprocess.Popen(cmd + ["--wait", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    b = subprocess.Popen(cmd + ["--wait", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    results = [(p.wait(timeout=300), *p.communicate()) for p in (a, b)]
    codes = sorted(r[0] for r in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, _, err in results:
        assert "Traceback" not in err
        if code == 2:  # the loser refused in one line naming the lock
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and ".curate.lock" in lines[0], err
    rows = _rows(out)
    assert len(rows) == 3 and set(rows.values()) == {1}
    assert all(r["status"] != "failed" for r in read_manifest(out / "manifest.jsonl"))


def test_second_run_waits_for_the_first(tmp_path):
    out = tmp_path / "out"
    cmd = CLI + ["--procedural", "3", "--output", str(out), *FAST]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    b = subprocess.Popen(cmd + ["--wait", "-1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    results = [(p.wait(timeout=300), *p.communicate()) for p in (a, b)]
    assert [r[0] for r in results] == [0, 0], results
    rows = _rows(out)
    assert len(rows) == 3 and set(rows.values()) == {1}  # the later run skipped every asset
    assert all(r["status"] != "failed" for r in read_manifest(out / "manifest.jsonl"))
    assert any("skipped 3 already done" in r[1] for r in results)


def test_stale_temporaries_are_cleaned_and_rerun_with_other_settings_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert _curate(out, n=2) == 0
    uid = "proc-s0-0000"
    # a killed writer's leftovers, in an asset that will be curated again (retry) and at the top
    (out / uid / ".dynamic.tmp-abc123").mkdir()
    (out / uid / ".dynamic.tmp-abc123" / "000.png").write_bytes(b"x")
    (out / uid / ".meta.json.xyz.tmp").write_text("{")
    (out / ".curate_config.yaml.q1.tmp").write_text("x")
    keep = out / uid / "notes.txt"
    keep.write_text("mine")
    assert _curate(out, "--retry-failed", n=2) == 0
    assert not (out / uid / ".dynamic.tmp-abc123").exists() and not (out / uid / ".meta.json.xyz.tmp").exists()
    assert not (out / ".curate_config.yaml.q1.tmp").exists() and keep.read_text() == "mine"
    capsys.readouterr()
    # other render settings on the same output: one line naming them, nothing changes
    before = sorted(str(p) for p in out.rglob("*"))
    from diffusion4d.app import main

    code = main(["curate", "--procedural", "2", "--output", str(out), *FAST[:2], "--resolution", "24",
                 *FAST[4:], "--set", "render.fov=40"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "other render settings" in err[0]
    assert "resolution 16 (now 24)" in err[0] and "fov" in err[0]
    assert sorted(str(p) for p in out.rglob("*")) == before
    # the same settings resume fine
    assert _curate(out, n=2) == 0


def test_shards_of_one_output_do_not_exclude_each_other(tmp_path):
    from diffusion4d.data_curation.runner import curation_lock, lock_path

    out = tmp_path / "out"
    with curation_lock(out, "0/2", wait=0), curation_lock(out, "1/2", wait=0):
        assert lock_path(out, "0/2") != lock_path(out, "1/2")
    with curation_lock(out, "0/1", wait=0):
        with pytest.raises(Exception, match="lock"):
            with curation_lock(out, "0/1", wait=0):
                pass
