import json
import os

import numpy as np
import pytest

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.io import (
    ManifestRecord,
    ManifestWriter,
    list_clip_dirs,
    read_clip,
    read_manifest,
    read_meta,
    write_clip,
    write_meta,
)
from diffusion4d.io.clip import frames_to_float


def _frames(n=3, h=8, w=10):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, h, w, 4), dtype=np.uint8)


def test_clip_round_trip(tmp_path):
    cams = orbit_trajectory("dynamic", 3, width=10, height=8)
    frames = _frames()
    folder = write_clip(tmp_path / "uid" / "dynamic", frames, cams)
    assert sorted(p.name for p in folder.iterdir()) == ["000.png", "001.png", "002.png", "cameras.json"]
    clip = read_clip(folder)
    assert np.array_equal(clip.frames, frames)
    assert np.allclose(clip.cameras.c2w, cams.c2w)
    data = json.loads((folder / "cameras.json").read_text())
    assert set(data["frames"][0]) >= {"index", "time", "time_seconds", "azimuth", "elevation", "radius", "c2w", "K"}


def test_clip_write_is_atomic_and_replaces(tmp_path):
    cams = orbit_trajectory("static", 3, width=10, height=8)
    target = tmp_path / "u" / "static"
    write_clip(target, _frames(), cams)
    with pytest.raises(ValueError):  # wrong frame count: nothing changes
        write_clip(target, _frames(n=2), cams)
    assert len(list(target.glob("*.png"))) == 3
    # a killed writer leaves only a hidden tmp folder, which is ignored and cleaned
    (tmp_path / "u" / ".static.tmp-dead").mkdir()
    assert list(list_clip_dirs(tmp_path, "static")) == ["u"]
    write_clip(target, _frames()[::-1].copy(), cams)
    assert not (tmp_path / "u" / ".static.tmp-dead").exists()


def test_clip_validation(tmp_path):
    cams = orbit_trajectory("dynamic", 3, width=10, height=8)
    with pytest.raises(ValueError, match="cameras say"):
        write_clip(tmp_path / "x", _frames(w=9), cams)
    with pytest.raises(FileNotFoundError, match="not a clip folder"):
        read_clip(tmp_path)


def test_meta_round_trip(tmp_path):
    write_meta(tmp_path / "u", {"uid": "u", "motion_magnitude": np.float32(0.5), "ssim": np.array([0.9, 0.8])})
    meta = read_meta(tmp_path / "u")
    assert meta["motion_magnitude"] == 0.5 and meta["ssim"] == pytest.approx([0.9, 0.8])
    assert read_meta(tmp_path / "missing") is None


def test_frames_to_float_composites_over_white():
    f = np.zeros((1, 1, 1, 4), dtype=np.uint8)  # transparent black
    assert np.allclose(frames_to_float(f), 1.0)
    f[..., 3] = 255
    assert np.allclose(frames_to_float(f), 0.0)


def test_manifest_append_and_latest(tmp_path):
    path = tmp_path / "manifest.jsonl"
    w = ManifestWriter(path)
    w.append(ManifestRecord("a", "procedural", "failed", "timeout", renderer="fast", seconds=1.0))
    w.append(ManifestRecord("b", "procedural", "accepted", "ok", motion_magnitude=0.1, extra={"ssim_half": 0.7}))
    w.append(ManifestRecord("a", "procedural", "accepted", "ok"))
    recs = read_manifest(path)
    assert [r["uid"] for r in recs] == ["b", "a"] and recs[1]["status"] == "accepted"
    assert recs[0]["ssim_half"] == 0.7
    assert len(read_manifest(path, latest_only=False)) == 3
    back = ManifestRecord.from_json(recs[0])
    assert back.extra == {"ssim_half": 0.7} and back.motion_magnitude == 0.1


def test_manifest_tolerates_truncated_last_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    ManifestWriter(path).append({"uid": "a", "status": "accepted"})
    with open(path, "ab") as fh:
        fh.write(b'{"uid": "b", "stat')  # writer killed mid-line
    assert [r["uid"] for r in read_manifest(path)] == ["a"]
    ManifestWriter(path).append({"uid": "c", "status": "rejected"})
    assert [r["uid"] for r in read_manifest(path)] == ["a", "c"]


def test_manifest_readable_while_written_by_two_processes(tmp_path):
    path = tmp_path / "m.jsonl"
    pids = []
    for k in range(2):
        pid = os.fork()
        if pid == 0:  # child
            w = ManifestWriter(path)
            for i in range(200):
                w.append({"uid": f"{k}-{i}", "status": "accepted", "pad": "x" * 300})
            os._exit(0)
        pids.append(pid)
        read_manifest(path)  # reading while the other writes must not fail
    for pid in pids:
        os.waitpid(pid, 0)
    recs = read_manifest(path)
    assert len(recs) == 400


def test_manifest_rejects_bad_status():
    with pytest.raises(ValueError):
        ManifestRecord("a", "local", "done", "")  # type: ignore[arg-type]
