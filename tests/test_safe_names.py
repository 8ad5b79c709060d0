"""The safe-name gate (diffusion4d/io/names.py): names that become paths never leave their root."""

import gzip
import json
import os
from pathlib import Path

import pytest

from diffusion4d.app import main
from diffusion4d.errors import UserError
from diffusion4d.io import read_manifest
from diffusion4d.io.names import SAFE_NAME_PATTERN, UnsafeNameError, is_safe_name, join_inside, make_safe_name, safe_name

UNSAFE = ["..", ".", "../../x", "/abs/path", "a/b", "", " lead", ".hidden", "a\\b", "C:evil", "a" * 129, "new\nline", "tab\tx"]
SAFE = ["0a1b2c3d4e5f", "proc-s0-0001", "a.b_c-d", "A", "x" * 128, "robot_s1_m0.50"]


def _listing(root: Path, skip: Path):
    """Every path under ``root`` except those under ``skip``."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if d == skip or skip in d.parents:
            continue
        out |= {str(d / n) for n in dirnames + filenames if d / n != skip}
    return out


@pytest.mark.parametrize("name", SAFE)
def test_safe_names_pass(name):
    assert is_safe_name(name) and safe_name(name, "uid") == name


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused_naming_the_rule(name):
    assert not is_safe_name(name)
    with pytest.raises(UserError, match="rule: 1-128 characters") as info:
        safe_name(name, "uid")
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value).replace(repr(name), "")


def test_pattern_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "contracts.md").read_text()
    assert SAFE_NAME_PATTERN in text


def test_make_safe_name_is_stable_and_distinct():
    assert make_safe_name("robot") == "robot"
    a, b = make_safe_name("my robot"), make_safe_name("my_robot?")
    assert is_safe_name(a) and is_safe_name(b) and a != b and a == make_safe_name("my robot")
    for text in ["..", "...", "été", "/etc/passwd", "x" * 300, ""]:
        assert is_safe_name(make_safe_name(text))


def test_join_inside_refuses_escapes_and_symlinks(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert join_inside(root, "ok") == root / "ok"
    for bad in ["..", "../x", "/tmp", "a/../../b"]:
        with pytest.raises(UnsafeNameError):
            join_inside(root, bad)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeNameError, match="resolves outside"):
        join_inside(root, "link")


def test_local_stems_become_safe_uids(tmp_path):
    from diffusion4d.data_curation.sources import local_tasks

    for stem in ["my robot", "..", "ok"]:
        (tmp_path / f"{stem}.glb").write_bytes(b"glTF")
    uids = sorted(t.uid for t in local_tasks([str(tmp_path)]))
    assert all(is_safe_name(u) for u in uids) and "ok" in uids and len(set(uids)) == 3


def _mirror(root: Path, uids):
    from diffusion4d.data_curation.gltf.craft import GltfCraft, cube

    c = GltfCraft()
    p, n, i = cube(0.5)
    c.add_node(mesh=c.add_mesh(p, i, normals=n, material=c.add_material((0.9, 0.5, 0.1, 1))))
    glb = c.to_glb()
    (root / "glbs/000-000").mkdir(parents=True)
    paths = {}
    for uid in uids:
        rel = f"glbs/000-000/{uid}.glb"
        if is_safe_name(uid):
            (root / rel).write_bytes(glb)
        paths[uid] = rel  # a hostile index may list unsafe uids too
    with gzip.open(root / "object-paths.json.gz", "wt") as fh:
        json.dump(paths, fh)
    (root / "metadata").mkdir()
    with gzip.open(root / "metadata/000-000.json.gz", "wt") as fh:
        json.dump({}, fh)


def test_curate_records_unsafe_uids_as_failed_and_writes_nothing_outside(tmp_path, capsys):
    import objaverse

    work = tmp_path / "work"
    out = work / "out"
    work.mkdir()
    unsafe = ["../../x", str(tmp_path / "abs_escape"), "..", "a/b", "../sibling"]
    _mirror(tmp_path / "store", ["0a1b2c3d4e5f", "../../x"])
    (tmp_path / "uids.txt").write_text("\n".join(["0a1b2c3d4e5f"] + unsafe) + "\n")
    before = _listing(tmp_path, out)
    old = objaverse._VERSIONED_PATH
    try:
        rc = main(["curate", "--objaverse-uids", str(tmp_path / "uids.txt"), "--objaverse-path", str(tmp_path / "store"),
                   "--output", str(out), "--frames", "4", "--resolution", "16", "--workers", "0", "--orbits-per-asset", "1",
                   "--modes", "dynamic,static", "--set", "rules.ssim=false"])
    finally:
        objaverse._VERSIONED_PATH = old
    capsys.readouterr()
    assert rc == 0
    recs = {r["uid"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert set(recs) == {"0a1b2c3d4e5f", *unsafe}
    for uid in unsafe:
        assert recs[uid]["status"] == "failed" and recs[uid]["reason"].startswith("unsafe_uid:")
        assert "rule: 1-128 characters" in recs[uid]["reason"]
    assert _listing(tmp_path, out) == before  # nothing appeared outside --output
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs_escape").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0a1b2c3d4e5f"]


@pytest.mark.parametrize("name", ["../../x", "/abs/sample", "..", "a/b", "", ".hidden"])
def test_generate_refuses_unsafe_name_before_writing(tmp_path, capsys, name):
    work = tmp_path / "work"
    work.mkdir()
    before = _listing(tmp_path, tmp_path / "none")
    rc = main(["generate", "--model", str(tmp_path / "no_model"), "--prompt", "a robot", "--name", name,
               "--output", str(work / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("diffusion4d generate: error: unsafe --name") and "Traceback" not in err
    assert _listing(tmp_path, tmp_path / "none") == before


def test_generate_sample_names_stay_inside(tmp_path):
    from diffusion4d.app.generate import check_sample_names

    check_sample_names(tmp_path, ["robot", "robot_s1_m0.50"])
    with pytest.raises(UserError):
        check_sample_names(tmp_path, ["x" * 125 + "_s10"])
