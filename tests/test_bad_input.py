"""Issue 15, "nothing escapes, nothing crashes": a table of damaged inputs built from one valid
synthetic clip, each read through the boundary readers (diffusion4d/io) and run through the
commands: exit status 2, exactly one stderr line ``diffusion4d <cmd>: error: ...``, no
traceback, nothing written outside the test's output folder."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
from PIL import Image

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.errors import UserError
from diffusion4d.io import read_cameras, read_clip, read_meta, write_clip, write_meta

N, SIZE = 4, 16


# ---------------------------------------------------------------------------- the damaged library
def _valid_asset(root: Path, uid: str = "asset") -> Path:
    """``root/<uid>/dynamic`` (+ static, meta.json): a small valid clip, like curation writes."""
    rng = np.random.default_rng(0)
    for mode in ("dynamic", "static"):
        cams = orbit_trajectory(mode, N, width=SIZE, height=SIZE)
        frames = rng.integers(0, 256, size=(N, SIZE, SIZE, 4), dtype=np.uint8)
        frames[..., 3] = 255
        write_clip(root / uid / mode, frames, cams)
    write_meta(root / uid, {"uid": uid, "caption": "a cube", "motion_magnitude": 0.01,
                            "orbits": [{"dynamic": "dynamic", "static": "static", "motion_magnitude": 0.01}]})
    return root / uid / "dynamic"


def _cams(clip: Path) -> dict:
    return json.loads((clip / "cameras.json").read_text())


def _set_cams(clip: Path, data) -> None:
    (clip / "cameras.json").write_text(data if isinstance(data, str) else json.dumps(data))


def _edit_frame0(key: str, value) -> Callable[[Path], None]:
    def edit(clip: Path) -> None:
        data = _cams(clip)
        data["frames"][0][key] = value
        _set_cams(clip, data)
    return edit


def _drop(key: str) -> Callable[[Path], None]:
    def edit(clip: Path) -> None:
        data = _cams(clip)
        if key == "K":
            del data["frames"][0]["K"]
        else:
            del data[key]
        _set_cams(clip, data)
    return edit


def _singular(clip: Path) -> None:
    data = _cams(clip)
    c2w = np.array(data["frames"][1]["c2w"])
    c2w[:3, 0] = 0.0  # a zero column: singular rotation
    data["frames"][1]["c2w"] = c2w.tolist()
    _set_cams(clip, data)


def _scaled(clip: Path) -> None:
    data = _cams(clip)
    c2w = np.array(data["frames"][0]["c2w"])
    c2w[:3, :3] *= 2.0
    data["frames"][0]["c2w"] = c2w.tolist()
    _set_cams(clip, data)


def _bad_last_row(clip: Path) -> None:
    data = _cams(clip)
    data["frames"][0]["c2w"][3] = [0, 0, 1, 1]
    _set_cams(clip, data)


def _nan_in(key: str) -> Callable[[Path], None]:
    def edit(clip: Path) -> None:
        text = (clip / "cameras.json").read_text()
        data = json.loads(text)
        data["frames"][2][key][0][0] = float("nan" if key == "c2w" else "inf")
        (clip / "cameras.json").write_text(json.dumps(data))  # json writes NaN / Infinity
    return edit


def _shape(key: str, rows: int, cols: int) -> Callable[[Path], None]:
    def edit(clip: Path) -> None:
        data = _cams(clip)
        data["frames"][0][key] = np.eye(rows, cols).tolist()
        _set_cams(clip, data)
    return edit


def _zero_byte_png(clip: Path) -> None:
    (clip / "001.png").write_bytes(b"")


def _missing_png(clip: Path) -> None:
    (clip / "002.png").unlink()


def _garbage_png(clip: Path) -> None:
    (clip / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def _wrong_size(clip: Path) -> None:
    Image.new("RGBA", (SIZE + 2, SIZE)).save(clip / "003.png")


def _extra_frame(clip: Path) -> None:
    shutil.copy(clip / "000.png", clip / f"{N:03d}.png")


def _fewer_cameras(clip: Path) -> None:
    data = _cams(clip)
    data["frames"] = data["frames"][:-1]
    _set_cams(clip, data)


#: damaged clip -> (mutation of a valid clip folder, text the error must contain)
CLIP_CASES: Dict[str, tuple] = {
    "zero_byte_png": (_zero_byte_png, "001.png: frame is an empty (0-byte) file"),
    "missing_png": (_missing_png, "002.png: frame missing"),
    "garbage_png": (_garbage_png, "001.png: not a readable image"),
    "wrong_size_frame": (_wrong_size, "003.png: frame is 18x16 but cameras.json says width x height = 16x16"),
    "extra_frame": (_extra_frame, "5 frame PNGs but cameras.json lists 4 frames"),
    "fewer_cameras": (_fewer_cameras, "4 frame PNGs but cameras.json lists 3 frames"),
    "cameras_not_json": (lambda c: _set_cams(c, '{"width": 16, "frames": ['), "cameras.json: not valid JSON (line 1"),
    "cameras_binary": (lambda c: (c / "cameras.json").write_bytes(b"\xff\xfe\x00garbage"), "cameras.json: not valid JSON"),
    "cameras_list": (lambda c: _set_cams(c, "[1, 2]"), "cameras.json: must hold a JSON object"),
    "cameras_missing": (lambda c: (c / "cameras.json").unlink(), "no cameras.json in"),
    "no_K": (_drop("K"), "frames[0]: missing field K"),
    "no_frames": (_drop("frames"), "cameras.json: missing field frames"),
    "no_width": (_drop("width"), "cameras.json: missing field width"),
    "no_height": (_drop("height"), "cameras.json: missing field height"),
    "empty_frames": (lambda c: _set_cams(c, {**_cams(c), "frames": []}), "frames must be a non-empty list"),
    "width_zero": (lambda c: _set_cams(c, {**_cams(c), "width": 0}), "width must be a positive integer"),
    "height_text": (lambda c: _set_cams(c, {**_cams(c), "height": "16"}), "height must be a positive integer"),
    "c2w_3x3": (_shape("c2w", 3, 3), "frames[0].c2w: not a 4x4 matrix (got 3x3)"),
    "c2w_3x4": (_shape("c2w", 3, 4), "frames[0].c2w: not a 4x4 matrix (got 3x4)"),
    "c2w_text": (_edit_frame0("c2w", "identity"), "frames[0].c2w: not a 4x4 matrix"),
    "K_2x2": (_shape("K", 2, 2), "frames[0].K: not a 3x3 matrix (got 2x2)"),
    "nan_c2w": (_nan_in("c2w"), "frames[2].c2w: holds NaN or Inf"),
    "inf_K": (_nan_in("K"), "frames[2].K: holds NaN or Inf"),
    "singular_c2w": (_singular, "frames[1].c2w: rotation part is not orthonormal"),
    "scaled_c2w": (_scaled, "frames[0].c2w: rotation part is not orthonormal"),
    "c2w_last_row": (_bad_last_row, "frames[0].c2w: last row must be [0, 0, 0, 1]"),
    "nan_time": (_edit_frame0("time", float("nan")), "frames[0].time must be a finite number"),
    "duplicate_index": (_edit_frame0("index", 1), "frames[1].index 1 appears twice"),
}


def _write_meta_text(text: str) -> Callable[[Path], None]:
    def edit(asset: Path) -> None:
        (asset / "meta.json").write_text(text)
    return edit


#: damaged meta.json of an asset folder -> (mutation, expected text)
META_CASES: Dict[str, tuple] = {
    "meta_not_json": (_write_meta_text('{"uid": "asset", '), "meta.json: not valid JSON"),
    "meta_infinite_motion": (_write_meta_text('{"uid": "asset", "motion_magnitude": Infinity}'),
                             "meta.json: motion_magnitude must be null or a finite number, got inf"),
    "meta_nan_orbit_motion": (_write_meta_text('{"uid": "asset", "motion_magnitude": 0.1, "orbits": [{"motion_magnitude": NaN}]}'),
                              "meta.json: orbits[0].motion_magnitude must be null or a finite number"),
    "meta_text_motion": (_write_meta_text('{"uid": "asset", "motion_magnitude": "high"}'), "motion_magnitude must be null"),
    "meta_list": (_write_meta_text("[]"), "meta.json: must hold a JSON object"),
}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Dict[str, Path]:
    """``{case: root}``: for each damaged case a dataset root ``root/asset/{dynamic,static}`` + meta.json
    (``valid`` untouched)."""
    base = tmp_path_factory.mktemp("library")
    out = {"valid": base / "valid"}
    _valid_asset(out["valid"])
    for name, (mutate, _) in CLIP_CASES.items():
        root = base / name
        shutil.copytree(out["valid"], root)
        mutate(root / "asset" / "dynamic")
        out[name] = root
    for name, (mutate, _) in META_CASES.items():
        root = base / name
        shutil.copytree(out["valid"], root)
        mutate(root / "asset")
        out[name] = root
    return out


# ---------------------------------------------------------------------------- the readers
def test_valid_clip_reads_unchanged(library):
    clip = read_clip(library["valid"] / "asset" / "dynamic")
    assert clip.frames.shape == (N, SIZE, SIZE, 4) and len(clip.cameras) == N
    assert np.allclose(clip.cameras.c2w, orbit_trajectory("dynamic", N, width=SIZE, height=SIZE).c2w)
    assert read_meta(library["valid"] / "asset")["motion_magnitude"] == 0.01


@pytest.mark.parametrize("case", sorted(CLIP_CASES))
def test_reader_names_file_and_field(library, case):
    folder = library[case] / "asset" / "dynamic"
    with pytest.raises(UserError) as info:
        read_clip(folder)
    message = str(info.value)
    assert CLIP_CASES[case][1] in message and str(folder) in message and "\n" not in message
    assert isinstance(info.value, (ValueError, FileNotFoundError))  # what callers caught before the checks


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_meta_reader_names_file_and_field(library, case):
    with pytest.raises(UserError, match="meta.json") as info:
        read_meta(library[case] / "asset")
    assert META_CASES[case][1] in str(info.value) and isinstance(info.value, ValueError)


def test_read_cameras_alone_checks_cameras(library):
    read_cameras(library["zero_byte_png"] / "asset" / "dynamic")  # frames are not its business
    with pytest.raises(UserError, match="c2w"):
        read_cameras(library["singular_c2w"] / "asset" / "dynamic")


def test_float32_rounding_is_accepted(tmp_path):
    cams = orbit_trajectory("dynamic", 3, width=8, height=8, elevation=17.0)
    for f in cams.frames:
        f.c2w = f.c2w.astype(np.float32).astype(np.float64)
    frames = np.zeros((3, 8, 8, 4), np.uint8)
    write_clip(tmp_path / "c", frames, cams)
    assert read_clip(tmp_path / "c").frames.shape == (3, 8, 8, 4)


# ---------------------------------------------------------------------------- argparse, captions, output paths
def _main(argv, capsys):
    """Run ``diffusion4d <argv>`` in process: (exit status, stdout, stderr lines)."""
    import logging

    from diffusion4d.app import main

    def drop_handlers():  # the CLI's log handler binds the stderr of its time: rebind it to this test's
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_diffusion4d", False)]:
            root.removeHandler(handler)

    drop_handlers()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from parse_args
        code = exc.code
    finally:
        drop_handlers()
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


@pytest.mark.parametrize("argv", [
    ["curate", "--frames", "x", "--output", "o"],
    ["curate", "--procedural", "1"],
    ["generate", "--model", "m"],
    ["evaluate", "--bogus"],
    ["reconstruct", "--input", "a", "--output", "b", "--nope"],
])
def test_argparse_errors_are_one_line(argv, capsys):
    code, _, err = _main(argv, capsys)
    cmd = argv[0]
    assert code == 2 and len(err) == 1 and err[0].startswith(f"diffusion4d {cmd}: error: "), err
    assert "usage:" not in err[0]


def test_captions_bom_is_handled(tmp_path):
    from diffusion4d.data_curation.sources import read_captions_csv

    (tmp_path / "c.csv").write_bytes('\ufeffu1,"a robot, waving"\n\nu2,a cube\n'.encode("utf-8"))
    assert read_captions_csv(tmp_path / "c.csv") == {"u1": "a robot, waving", "u2": "a cube"}


@pytest.mark.parametrize("text, expected", [
    ('u1,ok\nu2,"never closed\nu3,x\n', "c.csv:2: unterminated quoted field"),
    ("u1,ok\nlonely\n", "c.csv:2: malformed row 'lonely'"),
    ("u1,ok\n,no uid\n", "c.csv:2: malformed row"),
    ('u1,ok\nu2,"a"b"\n', "c.csv:2: malformed CSV row"),
])
def test_captions_errors_name_file_and_line(tmp_path, text, expected):
    from diffusion4d.data_curation.sources import read_captions_csv

    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(UserError, match=expected.replace("(", r"\(")):
        read_captions_csv(tmp_path / "c.csv")


# ---------------------------------------------------------------------------- the commands
def _listing(*roots: Path, skip: Path) -> set:
    """Every path under ``roots`` except ``skip`` and what lies below it."""
    out = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            d = Path(dirpath)
            if d == skip or skip in d.parents:
                continue
            out |= {str(d / n) for n in dirnames + filenames if d / n != skip}
    return out


def _assert_one_line_exit_2(code, err, cmd, expected):
    assert code == 2, (code, err)
    assert len(err) == 1, err
    assert err[0].startswith(f"diffusion4d {cmd}: error: "), err
    assert "Traceback" not in err[0] and expected in err[0], (expected, err)


def _clip(lib, case):
    return str(lib[case] / "asset" / "dynamic")


#: reader cases run through reconstruct and evaluate (cheap: they fail while reading)
RECON_CASES = ["zero_byte_png", "missing_png", "wrong_size_frame", "extra_frame", "cameras_not_json", "no_K", "c2w_3x4",
               "nan_c2w", "singular_c2w", "inf_K"]
EVAL_CASES = ["zero_byte_png", "wrong_size_frame", "fewer_cameras", "no_frames", "c2w_3x3", "nan_c2w", "scaled_c2w"]


@pytest.mark.parametrize("case", RECON_CASES)
def test_reconstruct_damaged_clip(library, tmp_path, capsys, case):
    out = tmp_path / "out"
    before = _listing(library["valid"].parent, tmp_path, skip=out)
    code, _, err = _main(["reconstruct", "--input", _clip(library, case), "--output", str(out), "--preset", "test",
                          "--device", "cpu", "--backend", "torch"], capsys)
    _assert_one_line_exit_2(code, err, "reconstruct", CLIP_CASES[case][1])
    assert _listing(library["valid"].parent, tmp_path, skip=out) == before


@pytest.mark.parametrize("side", ["gt", "pred"])
@pytest.mark.parametrize("case", EVAL_CASES)
def test_evaluate_damaged_clip(library, tmp_path, capsys, case, side):
    out = tmp_path / "out"
    gt, pred = (library[case], library["valid"]) if side == "gt" else (library["valid"], library[case])
    before = _listing(library["valid"].parent, tmp_path, skip=out)
    code, _, err = _main(["evaluate", "--gt", str(gt), "--pred", f"m={pred}", "--metrics", "psnr,ssim", "--output", str(out)],
                         capsys)
    _assert_one_line_exit_2(code, err, "evaluate", CLIP_CASES[case][1])
    assert _listing(library["valid"].parent, tmp_path, skip=out) == before


@pytest.mark.parametrize("case", ["meta_not_json", "meta_list"])
def test_evaluate_caption_reader_refuses_damaged_meta(library, case):
    from diffusion4d.eval.samples import caption_of

    assert caption_of(library["valid"] / "asset", None) == "a cube"
    with pytest.raises(UserError, match="meta.json"):
        caption_of(library[case] / "asset", None)


def test_evaluate_damaged_generation_json(library, tmp_path):
    from diffusion4d.eval.samples import read_generation

    (tmp_path / "generation.json").write_text('{"prompt": "a robot", ')
    with pytest.raises(UserError, match="generation.json: not valid JSON"):
        read_generation(tmp_path)
    assert read_generation(tmp_path / "none") is None


def _file(tmp_path: Path) -> Path:
    f = tmp_path / "a_file"
    f.write_text("not a folder")
    return f


GEN = ["generate", "--model", "{missing}", "--prompt", "a robot", "--output", "{out}"]

#: generate: (extra flags, expected text); every one fails before the model is looked at
GENERATE_CASES = {
    "elevation_nan": (["--elevation", "nan"], "--elevation must be a finite number"),
    "elevation_inf": (["--elevation", "inf"], "--elevation must be a finite number"),
    "elevation_90": (["--elevation", "90"], "--elevation must lie strictly between -90 and 90"),
    "azimuth_nan": (["--start-azimuth", "nan"], "--start-azimuth must be a finite number"),
    "fps_zero": (["--fps", "0"], "--fps must be > 0"),
    "fps_negative": (["--fps", "-3"], "--fps must be > 0"),
    "fps_text": (["--fps", "fast"], "argument --fps: invalid float value"),
    "prompt_empty": (["--prompt", ""], "--prompt is empty"),
    "prompt_blank": (["--prompt", "  \t "], "--prompt is empty"),
    "device_tpu": (["--device", "tpu9"], "--device 'tpu9' is not a device"),
    "device_cuda_missing": (["--device", "cuda"], "CUDA is not available"),
    "guidance_nan": (["--guidance", "nan", "0.5"], "--guidance weights must be finite"),
    "name_escape": (["--name", "../../x"], "unsafe --name '../../x'"),
    "name_absolute": (["--name", "/abs/x"], "unsafe --name '/abs/x': it is an absolute path"),
    "name_dotdot": (["--name", ".."], "unsafe --name '..'"),
    "motion_nan": (["--motion", "nan"], "--motion: values must be finite"),
    "unknown_flag": (["--frobnicate"], "unrecognized arguments: --frobnicate"),
}


@pytest.mark.parametrize("case", sorted(GENERATE_CASES))
def test_generate_bad_flags(tmp_path, capsys, case):
    import torch

    extra, expected = GENERATE_CASES[case]
    if case == "device_cuda_missing" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    argv = [a.format(missing=tmp_path / "no_model", out=out) for a in GEN] + extra
    before = _listing(tmp_path, skip=out)
    code, _, err = _main(argv, capsys)
    _assert_one_line_exit_2(code, err, "generate", expected)
    assert not out.exists() and _listing(tmp_path, skip=out) == before


def test_generate_output_is_a_file(tmp_path, capsys):
    f = _file(tmp_path)
    code, _, err = _main(["generate", "--model", str(tmp_path / "m"), "--prompt", "x", "--output", str(f)], capsys)
    _assert_one_line_exit_2(code, err, "generate", "exists and is not a folder")
    assert f.read_text() == "not a folder"


CURATE = ["curate", "--procedural", "2", "--frames", "4", "--resolution", "16", "--workers", "0",
          "--orbits-per-asset", "1", "--modes", "dynamic,static", "--set", "rules.ssim=false"]


@pytest.mark.parametrize("case, text, expected", [
    ("unterminated", 'proc-s0-0000,"a cube\nproc-s0-0001,x\n', "caps.csv:1: unterminated quoted field"),
    ("malformed", "proc-s0-0000,a cube\njust_one_field\n", "caps.csv:2: malformed row 'just_one_field'"),
    ("not_utf8", "proc-s0-0000,caf\udce9\n", "caps.csv:1: not UTF-8 text"),
])
def test_curate_bad_captions_refused_before_any_asset(tmp_path, capsys, case, text, expected):
    caps = tmp_path / "caps.csv"
    caps.write_bytes(text.encode("utf-8", "surrogateescape"))
    out = tmp_path / "out"
    code, _, err = _main(CURATE + ["--captions", str(caps), "--output", str(out)], capsys)
    _assert_one_line_exit_2(code, err, "curate", expected)
    assert not out.exists()  # nothing written, not even the procedural assets


def test_curate_captions_with_bom_work(tmp_path, capsys):
    caps = tmp_path / "caps.csv"
    caps.write_bytes("\ufeffproc-s0-0000,\"a cube, spinning\"\n".encode("utf-8"))
    out = tmp_path / "out"
    code, _, _ = _main(CURATE + ["--captions", str(caps), "--output", str(out)], capsys)
    assert code == 0
    from diffusion4d.io import read_manifest

    recs = {r["uid"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert recs["proc-s0-0000"]["caption"] == "a cube, spinning"


@pytest.mark.parametrize("make, expected", [
    (lambda t: _file(t), "exists and is not a folder"),
    (lambda t: _file(t) / "below", "is a file, not a folder"),
])
def test_curate_output_is_a_file(tmp_path, capsys, make, expected):
    target = make(tmp_path)
    before = _listing(tmp_path, skip=tmp_path / "none")
    code, _, err = _main(CURATE + ["--output", str(target)], capsys)
    _assert_one_line_exit_2(code, err, "curate", expected)
    assert _listing(tmp_path, skip=tmp_path / "none") == before


@pytest.mark.parametrize("argv, expected", [
    (["curate", "--procedural", "0", "--output", "{out}"], "--procedural needs N >= 1"),
    (["curate", "--input", "{tmp}/missing.glb", "--output", "{out}"], "input not found"),
    (["curate", "--objaverse-uids", "{tmp}/missing.txt", "--output", "{out}"], "uid list not found"),
    (["curate", "--procedural", "1", "--input", "x.glb", "--output", "{out}"], "give exactly one source"),
    (["curate", "--procedural", "1", "--frames", "2", "--output", "{out}"], "frames must be >= 3"),
    (["reconstruct", "--input", "{tmp}/nothing", "--output", "{out}"], "is not a clip folder"),
    (["evaluate", "--pred", "nameless", "--output", "{out}"], "--pred expects NAME=DIR"),
    (["evaluate", "--pred", "m={tmp}", "--output", "{tmp}/a_file"], "exists and is not a folder"),
])
def test_other_bad_arguments(tmp_path, capsys, argv, expected):
    out = tmp_path / "out"
    _file(tmp_path)
    argv = [a.format(out=out, tmp=tmp_path) for a in argv]
    code, _, err = _main(argv, capsys)
    _assert_one_line_exit_2(code, err, argv[0], expected)


def test_unsafe_uids_never_leave_the_output(tmp_path, capsys):
    """Unsafe names through the procedural-free path: a uid list of hostile names, no Objaverse index
    needed (they fail at the gate before the source is consulted)."""
    from diffusion4d.data_curation.curate_asset import AssetTask
    from diffusion4d.data_curation.curate_config import CurateConfig
    from diffusion4d.data_curation.runner import run_curation
    from diffusion4d.io import read_manifest

    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    cfg = CurateConfig(output=str(out), workers=0)
    hostile = ["../../x", str(tmp_path / "abs"), "..", "a/b", ".", ""]
    before = _listing(tmp_path, skip=out)
    summary = run_curation(cfg, [AssetTask(u, None, "objaverse", error="missing_source: test") for u in hostile])
    assert summary.failed == len(hostile) and _listing(tmp_path, skip=out) == before
    recs = read_manifest(out / "manifest.jsonl")
    assert len(recs) == len(hostile) and all(r["reason"].startswith("unsafe_uid:") for r in recs)


def test_subprocess_bad_input_is_one_line(library, tmp_path):
    """The console script itself (a few cases): exit 2, one stderr line, no traceback."""
    import subprocess
    import sys

    env = dict(os.environ, DIFFUSION4D_NO_PROGRESS="1")
    cases = [
        (["reconstruct", "--input", _clip(library, "nan_c2w"), "--output", str(tmp_path / "r"), "--preset", "test",
          "--device", "cpu"], "holds NaN or Inf"),
        (["generate", "--model", "m", "--prompt", "x", "--output", str(tmp_path / "g"), "--fps", "0"], "--fps must be > 0"),
        (["curate", "--frames", "many", "--output", str(tmp_path / "c")], "invalid int value"),
    ]
    for argv, expected in cases:
        proc = subprocess.run([sys.executable, "-m", "diffusion4d", *argv], capture_output=True, text=True, env=env,
                              timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("case", ["meta_infinite_motion", "meta_not_json"])
def test_training_records_inherit_meta_checks(library, tmp_path, case):
    from diffusion4d.io import ManifestRecord, ManifestWriter
    from diffusion4d.train.orbit_dataset import load_orbit_records

    root = tmp_path / "data"
    shutil.copytree(library[case], root)
    ManifestWriter(root / "manifest.jsonl").append(ManifestRecord("asset", "procedural", "accepted", "ok"))
    with pytest.raises(UserError, match="meta.json"):
        load_orbit_records(str(root))


@pytest.mark.parametrize("case", ["zero_byte_png", "singular_c2w", "wrong_size_frame"])
def test_training_frames_inherit_clip_checks(library, case):
    from diffusion4d.train.orbit_dataset import _load_frames

    with pytest.raises(UserError, match=CLIP_CASES[case][1].split(":")[0].replace("[", r"\[").replace(".", r"\.")):
        _load_frames(library[case] / "asset" / "dynamic", np.arange(N), SIZE)
