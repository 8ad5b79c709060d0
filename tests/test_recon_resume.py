"""Resuming a reconstruction: the finished coarse stage is saved before the fine stage and reused
by a rerun (unless the config or the input changed, or ``--restart``); a failing stage is one
line at the command line."""

from __future__ import annotations

import json
import logging

import pytest

import diffusion4d.recon.fit
import diffusion4d.recon.pipeline
from diffusion4d.recon.resume import COARSE_FILE, coarse_inputs, describe_difference, fingerprint, load_coarse
from diffusion4d.recon.recon_config import load_recon_config
from diffusion4d.recon.testing import write_synthetic_asset

FAST = ["output.videos=false", "output.ply=false"]


@pytest.fixture(scope="module")
def asset(tmp_path_factory):
    return write_synthetic_asset(tmp_path_factory.mktemp("assets"), frames=6, size=16, num=60)


class Boom(RuntimeError):
    pass


def _count_coarse(monkeypatch):
    calls = []
    real = diffusion4d.recon.pipeline.fit_static

    def counting(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        return real(*args, **kwargs)

    monkeypatch.setattr(diffusion4d.recon.pipeline, "fit_static", counting)
    return calls


def _fail_fine(monkeypatch):
    def boom(*args, **kwargs):
        raise Boom("simulated crash in the fine stage")

    monkeypatch.setattr(diffusion4d.recon.pipeline, "fit_deformation", boom)


def test_a_crash_in_the_fine_stage_keeps_the_coarse_stage_and_the_rerun_resumes(asset, tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    calls = _count_coarse(monkeypatch)
    with monkeypatch.context() as m:
        _fail_fine(m)
        with pytest.raises(diffusion4d.recon.pipeline.UserError, match="fine stage failed on .*Boom: simulated crash") as info:
            diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", holdout=3, overrides=FAST)
        assert isinstance(info.value.__cause__, Boom)
    assert calls == ["coarse"]
    assert (out / COARSE_FILE).is_file() and not (out / "metrics.json").exists()
    assert not list(out.glob(".*.tmp"))  # no temporary file left behind

    with caplog.at_level(logging.INFO, logger="diffusion4d.recon.pipeline"):
        metrics = diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", holdout=3, overrides=FAST)
    assert calls == ["coarse"]  # not fitted again
    assert metrics["resumed"] == ["coarse"] and metrics["timings"]["coarse"] == 0.0
    assert any("coarse stage: already finished" in r.getMessage() for r in caplog.records)
    assert (out / "metrics.json").is_file() and (out / "gaussians_4d.safetensors").is_file()
    assert (out / "dynamic" / "cameras.json").is_file() and metrics["psnr_train"] > 5.0


def test_resumed_run_equals_an_uninterrupted_one(asset, tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    full = diffusion4d.recon.pipeline.reconstruct(asset, a, preset="test", backend="torch", overrides=FAST)
    with monkeypatch.context() as m:
        _fail_fine(m)
        with pytest.raises(diffusion4d.recon.pipeline.UserError):
            diffusion4d.recon.pipeline.reconstruct(asset, b, preset="test", backend="torch", overrides=FAST)
    resumed = diffusion4d.recon.pipeline.reconstruct(asset, b, preset="test", backend="torch", overrides=FAST)
    assert resumed["resumed"] == ["coarse"] and full["resumed"] == []
    assert resumed["psnr_train"] == pytest.approx(full["psnr_train"], abs=1e-5)
    assert resumed["num_gaussians"] == full["num_gaussians"]


def test_a_different_config_or_input_or_restart_refits_the_coarse_stage(asset, tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    calls = _count_coarse(monkeypatch)
    with monkeypatch.context() as m:
        _fail_fine(m)
        with pytest.raises(diffusion4d.recon.pipeline.UserError):
            diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", overrides=FAST)
    assert calls == ["coarse"]
    # fine.* and output.* do not change the coarse result: still reused
    diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", overrides=[*FAST, "fine.iterations=2"])
    assert calls == ["coarse"]
    # a coarse-stage setting changed: refitted, and the log says why
    with caplog.at_level(logging.INFO, logger="diffusion4d.recon.pipeline"):
        m2 = diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", overrides=[*FAST, "coarse.iterations=5"])
    assert calls == ["coarse", "coarse"] and m2["resumed"] == []
    assert any("not reusing" in r.getMessage() and "coarse.iterations: 12 -> 5" in r.getMessage() for r in caplog.records)
    # restart: refitted even though the saved stage matches
    diffusion4d.recon.pipeline.reconstruct(asset, out, preset="test", backend="torch", restart=True, overrides=[*FAST, "coarse.iterations=5"])
    assert calls == ["coarse"] * 3


def test_fingerprint_covers_the_input_clip_files(asset, tmp_path):
    import shutil

    clip = tmp_path / "uid" / "dynamic"
    shutil.copytree(asset, clip)
    cfg = load_recon_config("test")
    before = coarse_inputs(cfg, {"clip": clip, "static": None})
    (clip / "005.png").write_bytes((clip / "005.png").read_bytes() + b"\0")  # a frame re-rendered
    after = coarse_inputs(cfg, {"clip": clip, "static": None})
    assert fingerprint(before) != fingerprint(after)
    assert describe_difference(before, after) == "the clip clip's files differ"
    assert fingerprint(before) == fingerprint(json.loads(json.dumps(before)))


def test_a_damaged_saved_stage_is_refitted_not_an_error(tmp_path):
    (tmp_path / COARSE_FILE).write_bytes(b"not a safetensors file")
    model, _, reason = load_coarse(tmp_path / COARSE_FILE, {"config": {}, "inputs": {}}, "cpu")
    assert model is None and "unreadable" in reason


def test_cli_a_failing_stage_is_one_line_exit_2(asset, tmp_path, monkeypatch, capsys):
    from diffusion4d.app import main

    def boom(*args, **kwargs):
        raise RuntimeError("element 0 of tensors does not require grad\nand a second line")

    monkeypatch.setattr(diffusion4d.recon.pipeline, "fit_deformation", boom)
    rc = main(["-q", "reconstruct", "--input", str(asset), "--output", str(tmp_path / "o"), "--preset", "test",
               "--backend", "torch", *FAST])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"diffusion4d reconstruct: error: fine stage failed on {asset}: "
                     "RuntimeError: element 0 of tensors does not require grad [...]"]  # fmt: skip
    assert "Traceback" not in err
    # the rerun resumes from the saved coarse stage; --restart refits it
    monkeypatch.undo()  # the fine stage works again
    calls = _count_coarse(monkeypatch)
    assert main(["-q", "reconstruct", "--input", str(asset), "--output", str(tmp_path / "o"), "--preset", "test",
                 "--backend", "torch", *FAST]) == 0  # fmt: skip
    assert calls == []
    assert main(["-q", "reconstruct", "--input", str(asset), "--output", str(tmp_path / "o"), "--preset", "test",
                 "--backend", "torch", "--restart", *FAST]) == 0  # fmt: skip
    assert calls == ["coarse"]


def test_the_traceback_is_logged_at_debug_level(asset, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(diffusion4d.recon.fit, "photometric_loss", lambda *a, **k: (_ for _ in ()).throw(ValueError("bad pixels")))
    with caplog.at_level(logging.DEBUG, logger="diffusion4d.recon.pipeline"):
        with pytest.raises(diffusion4d.recon.pipeline.UserError, match=r"^coarse stage failed on .*: ValueError: bad pixels$"):
            diffusion4d.recon.pipeline.reconstruct(asset, tmp_path / "o", preset="test", backend="torch", overrides=FAST)
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "coarse stage failed" in r.getMessage()]
    assert debug and debug[0].exc_info is not None
    assert not (tmp_path / "o" / COARSE_FILE).exists()  # an unfinished stage is never saved
