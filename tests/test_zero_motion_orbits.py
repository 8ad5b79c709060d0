"""``data.zero_motion_prob``: stage-4d samples served as their static orbit with m = 0."""

import pytest
import torch

from diffusion4d.testing.orbits import write_synthetic_dataset
from diffusion4d.train.orbit_dataset import OrbitDataset, build_latent_cache


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("zm")
    write_synthetic_dataset(root, num_assets=4, num_frames=4, size=16, orbits=1)
    return root


def test_static_orbit_replaces_the_video_with_m_zero(data):
    plain = OrbitDataset(str(data), 16, 4)
    always = OrbitDataset(str(data), 16, 4, zero_motion_prob=1.0)
    for i in range(len(plain)):
        a, z = plain[i], always[i]
        assert a["motion_magnitude"] > 0 and z["motion_magnitude"] == 0.0
        assert not torch.equal(a["frames"], a["static_frames"])  # the synthetic assets move
        assert torch.equal(z["frames"], a["static_frames"]) and torch.equal(z["static_frames"], a["static_frames"])
        assert torch.equal(z["c2w"], a["c2w"])  # the static orbit shares the dynamic orbit's cameras


def test_draws_are_seeded_per_epoch_and_match_the_probability(data):
    ds = OrbitDataset(str(data), 16, 4, zero_motion_prob=0.3, seed=5)
    draws = []
    for epoch in range(500):
        ds.set_epoch(epoch)
        draws += [ds.zero_motion(i) for i in range(len(ds))]
    assert abs(sum(draws) / len(draws) - 0.3) < 0.04
    ds.set_epoch(7)
    first = [ds.zero_motion(i) for i in range(len(ds))]
    assert first == [ds.zero_motion(i) for i in range(len(ds))]
    assert not OrbitDataset(str(data), 16, 4, stage="prior3d", zero_motion_prob=1.0).zero_motion(0)


def test_works_on_the_latent_cache(data, tmp_path):
    ds = OrbitDataset(str(data), 16, 4, zero_motion_prob=1.0)
    encode = lambda frames: frames.permute(0, 2, 1, 3, 4) * 2 - 1  # noqa: E731  pixel space, [B, C, F, H, W]
    text = lambda captions: torch.zeros(len(captions), 3, 8)  # noqa: E731
    build_latent_cache(ds, tmp_path, encode, text)
    ds.cache_dir = tmp_path
    item = ds[0]
    assert item["motion_magnitude"] == 0.0 and torch.equal(item["latents"], item["static_latents"])


def test_cache_stores_foreground_fractions_of_each_latent_cell(data, tmp_path):
    """The cache's foreground masks are the silhouette's share per latent cell, and a zero-motion
    draw swaps them with the video (the static orbit's mask)."""
    from diffusion4d.metrics import silhouette
    from diffusion4d.train.orbit_dataset import foreground_fraction

    ds = OrbitDataset(str(data), 16, 4)
    encode = lambda frames: torch.nn.functional.avg_pool3d(frames.permute(0, 2, 1, 3, 4), (1, 4, 4))  # noqa: E731  [B, 3, F, 4, 4]
    text = lambda captions: torch.zeros(len(captions), 3, 8)  # noqa: E731
    build_latent_cache(ds, tmp_path, encode, text)
    px = ds.load_pixels(0, 0)
    ds.cache_dir = tmp_path
    item = ds[0]
    assert item["foreground"].shape == (4, 4, 4)
    sil = silhouette(px["frames"]).float()  # [F, 16, 16]
    want = torch.stack([sil[:, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4].mean((-1, -2)) for y in range(4) for x in range(4)], -1)
    torch.testing.assert_close(item["foreground"], want.reshape(4, 4, 4))
    assert 0 < float(item["foreground"].mean()) < 1
    torch.testing.assert_close(foreground_fraction(px["static_frames"], (4, 4)), item["static_foreground"])
    ds.zero_motion_prob = 1.0
    torch.testing.assert_close(ds[0]["foreground"], item["static_foreground"])


def test_training_order_does_not_depend_on_the_manifest_row_order(tmp_path):
    """Parallel curation writes manifest rows in completion order; the batches must not follow it."""
    from diffusion4d.train.orbit_dataset import load_orbit_records

    write_synthetic_dataset(tmp_path, num_assets=4, num_frames=4, size=16, orbits=2)
    first = load_orbit_records(str(tmp_path))
    manifest = tmp_path / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[::-1]) + "\n")
    again = load_orbit_records(str(tmp_path))
    assert [r["uid"] for r in again] == [r["uid"] for r in first] == sorted(r["uid"] for r in first)
    a = OrbitDataset(str(tmp_path), 16, 4)
    assert [a[i]["uid"] for i in range(len(a))] == sorted(r["uid"] for r in first)
