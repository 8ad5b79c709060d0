"""diffusion4d.eval.colour_match: mean foreground colour and nearest-asset rank, against hand-made frames."""

import numpy as np
import pytest

from diffusion4d.eval.colour_match import colour_match, foreground_mean_colour, summary


def _square(rgb, size=16, frames=2):
    x = np.ones((frames, size, size, 3))
    x[:, 4:12, 4:12] = rgb
    return x


def test_foreground_mean_colour_ignores_white_background():
    np.testing.assert_allclose(foreground_mean_colour(_square([0.8, 0.1, 0.1])), [0.8, 0.1, 0.1])
    assert foreground_mean_colour(np.ones((1, 4, 4, 3))) is None
    with pytest.raises(ValueError, match=r"\[F, H, W, 3\]"):
        foreground_mean_colour(np.ones((4, 4, 3)))


def test_colour_match_ranks_own_asset():
    refs = {"red": _square([0.8, 0.1, 0.1]), "green": _square([0.1, 0.7, 0.1]), "purple": _square([0.5, 0.2, 0.7])}
    gen = {"red": _square([0.7, 0.2, 0.15]), "purple": _square([0.15, 0.65, 0.2]), "blank": np.ones((1, 8, 8, 3))}
    got = {m.uid: m for m in colour_match(gen, refs)}
    assert got["red"].rank == 1 and got["red"].nearest == "red" and got["red"].matched
    assert got["purple"].nearest == "green" and got["purple"].rank == 2 and not got["purple"].matched
    np.testing.assert_allclose(got["red"].distance, np.linalg.norm(np.array([0.1, -0.1, -0.05])))
    assert got["blank"].rank is None and not got["blank"].matched  # no foreground: no verdict
    s = summary(list(got.values()))
    assert s["matched"] == 1 and s["samples"] == 3
