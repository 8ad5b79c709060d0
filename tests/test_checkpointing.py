"""train/checkpointing.py: the COMPLETE marker, atomic replacement, rotation, resume resolution."""

import logging
import os
from pathlib import Path

import pytest

from diffusion4d.errors import UserError
from diffusion4d.train.checkpointing import (COMPLETE_MARKER, is_complete, list_checkpoints, remove_stale_temporaries, resolve_resume,
                                 save_checkpoint, step_of)


class FakeAccelerator:
    """The slice of accelerate.Accelerator that save_checkpoint uses (one process)."""

    is_main_process = True

    def __init__(self, payload="state", fail_in=None):
        self.payload, self.fail_in = payload, fail_in

    def wait_for_everyone(self):
        pass

    def save_state(self, folder):
        os.makedirs(folder)
        Path(folder, "model.safetensors").write_text(self.payload)
        if self.fail_in == "save_state":
            raise RuntimeError("killed while saving")


def _pipeline(text="pipe", fail=False):
    def write(folder: Path):
        (folder / "model_index.json").write_text(text)
        if fail:
            raise RuntimeError("killed while writing the pipeline")
    return write


def _save(out, step, payload="state", keep_last=10, **kw):
    return save_checkpoint(FakeAccelerator(payload, **kw), out, step, _pipeline(payload), keep_last)


def test_save_writes_marker_last_and_lists(tmp_path):
    ck = _save(tmp_path, 3)
    assert ck == tmp_path / "checkpoint-3" and is_complete(ck)
    assert (ck / COMPLETE_MARKER).is_file() and (ck / "model_index.json").read_text() == "state"
    assert list_checkpoints(tmp_path) == [(3, ck)]
    assert resolve_resume(tmp_path, "latest") == ck and step_of(ck) == 3
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_killed_save_leaves_no_checkpoint(tmp_path):
    _save(tmp_path, 1)
    for where in ("save_state", "pipeline"):
        with pytest.raises(RuntimeError):
            if where == "save_state":
                _save(tmp_path, 2, fail_in="save_state")
            else:
                save_checkpoint(FakeAccelerator(), tmp_path, 2, _pipeline(fail=True), 10)
        assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
        assert resolve_resume(tmp_path, "latest") == tmp_path / "checkpoint-1"
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]


def test_incomplete_checkpoints_are_skipped(tmp_path, caplog):
    _save(tmp_path, 1)
    broken = tmp_path / "checkpoint-5"  # e.g. an interrupted copy: state but no marker
    (broken / "accelerate_state").mkdir(parents=True)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]
    assert resolve_resume(tmp_path, "latest") == tmp_path / "checkpoint-1"
    with pytest.raises(UserError, match="incomplete checkpoint.*COMPLETE"):
        resolve_resume(tmp_path, str(broken))
    with pytest.raises(UserError, match="not a checkpoint folder"):
        resolve_resume(tmp_path, str(tmp_path / "nowhere"))
    assert resolve_resume(tmp_path, str(tmp_path / "checkpoint-1")) == tmp_path / "checkpoint-1"


def test_latest_without_checkpoint_warns(tmp_path, caplog):
    (tmp_path / "checkpoint-2" / "accelerate_state").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="diffusion4d.train.checkpointing"):
        assert resolve_resume(tmp_path, "latest") is None
    assert "no complete checkpoint" in caplog.text and "checkpoint-2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="diffusion4d.train.checkpointing"):
        assert resolve_resume(tmp_path / "empty", "latest") is None
    assert "no complete checkpoint" in caplog.text
    assert resolve_resume(tmp_path, None) is None and resolve_resume(tmp_path, "") is None


def test_replacing_a_checkpoint_is_atomic(tmp_path, monkeypatch):
    _save(tmp_path, 4, payload="old")
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):  # at every rename, a complete checkpoint-4 or its complete parts exist
        seen.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)
        done = [p for p in tmp_path.iterdir() if is_complete(p)]
        assert done, "no complete checkpoint on disk"

    monkeypatch.setattr(os, "replace", watching_replace)
    ck = _save(tmp_path, 4, payload="new")
    monkeypatch.undo()
    assert seen == [("checkpoint-4", ".old-checkpoint-4"), (".tmp-checkpoint-4", "checkpoint-4")]
    assert (ck / "accelerate_state" / "model.safetensors").read_text() == "new" and is_complete(ck)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]


@pytest.mark.parametrize("tmp_complete", [True, False])
def test_kill_between_the_two_renames_is_repaired(tmp_path, tmp_complete):
    _save(tmp_path, 4, payload="old")
    os.replace(tmp_path / "checkpoint-4", tmp_path / ".old-checkpoint-4")  # killed right after renaming aside
    new = tmp_path / ".tmp-checkpoint-4"
    (new / "accelerate_state").mkdir(parents=True)
    (new / "accelerate_state" / "model.safetensors").write_text("new")
    if tmp_complete:
        (new / COMPLETE_MARKER).write_text("{}")
    assert list_checkpoints(tmp_path) == []
    remove_stale_temporaries(tmp_path)
    ck = tmp_path / "checkpoint-4"
    assert is_complete(ck) and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]
    assert (ck / "accelerate_state" / "model.safetensors").read_text() == ("new" if tmp_complete else "old")


def test_rotation_keeps_last(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-4"]
    (tmp_path / ".trash-checkpoint-1" / "accelerate_state").mkdir(parents=True)  # a killed rotation
    remove_stale_temporaries(tmp_path)
    assert not (tmp_path / ".trash-checkpoint-1").exists()
