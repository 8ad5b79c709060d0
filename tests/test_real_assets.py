"""Real third-party animated glTF assets (data_curation/real_assets.py): one of each animation
kind (node TRS, skinned, morph targets) is fetched from its Debian package, curated with the
project's own curation at a tiny size, and one is reconstructed with the ``test`` preset.
Skipped cleanly when the package (or, for the node asset, node/npm) cannot be had here."""

from __future__ import annotations

import json

import pytest

from diffusion4d.data_curation.real_assets import KINDS, RealAssetsUnavailable, asset_list, fetch, main as fetch_main
from diffusion4d.io import read_manifest


def test_the_list_names_origin_and_licence_of_every_asset():
    assets = asset_list()
    assert {a.kind for a in assets} == set(KINDS)
    for a in assets:
        assert a.upstream and a.licence and a.path.endswith((".gltf", ".glb")) and a.files


def test_list_cli_prints_every_asset(capsys):
    assert fetch_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(a.name in out for a in asset_list())


@pytest.fixture(scope="module")
def real_assets(tmp_path_factory):
    out = tmp_path_factory.mktemp("real_input")
    try:
        got = fetch(out)
    except RealAssetsUnavailable as err:
        pytest.skip(f"real assets unavailable here: {err}")
    if not got["assets"]:
        pytest.skip(f"no real asset available here: {got['unavailable']}")
    return out, got


@pytest.mark.slow
def test_real_assets_curate_at_tiny_size_and_one_reconstructs(real_assets, tmp_path):
    from diffusion4d.app import main as cli
    from diffusion4d.recon import reconstruct

    folder, got = real_assets
    kinds = {a.name: a.kind for a in asset_list()}
    curated = tmp_path / "curated"
    rc = cli(["curate", "--input", str(folder), "--output", str(curated), "--frames", "8", "--resolution", "32", "--workers", "0"])
    assert rc == 0
    records = {r["uid"]: r for r in read_manifest(curated / "manifest.jsonl")}
    assert set(records) == set(got["assets"])  # every fetched asset was curated (none failed to load)
    for uid, rec in records.items():
        assert rec["status"] in ("accepted", "rejected"), (uid, rec)  # a rule's decision, not a loader failure
        assert (curated / uid / "dynamic" / "cameras.json").is_file()
    # one of each kind that is available here
    assert {kinds[u] for u in records} == {kinds[u] for u in got["assets"]}
    # reconstruct the morph-target cube (falls back to any available asset)
    uid = "AnimatedMorphCube" if "AnimatedMorphCube" in records else sorted(records)[0]
    m = reconstruct(curated / uid / "dynamic", tmp_path / "out", preset="test", holdout=4)
    assert m["psnr_train"] > 10.0 and m["num_gaussians"] > 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["clip"].endswith("dynamic")
