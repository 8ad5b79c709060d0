"""diffusion4d.eval.colour_match: mean foreground colour and nearest-asset rank, against hand-made frames."""

import numpy as np
import pytest

from diffusion4d.eval.colour_match import colour_match, foreground_mean_colour


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


def test_renders_of_one_object_count_once():
    """Amplitude variants of one object share its caption: they must not outrank each other,
    and a foreign object between two of them still costs a rank only once."""
    refs = {"red": _square([0.8, 0.1, 0.1]), "red-a0.5": _square([0.78, 0.12, 0.1]), "orange": _square([0.85, 0.35, 0.1]),
            "green": _square([0.1, 0.7, 0.1]), "green-a0.5": _square([0.12, 0.68, 0.1])}
    objects = {"red": "a red cube", "red-a0.5": "a red cube", "orange": "an orange cube",
               "green": "a green cube", "green-a0.5": "a green cube"}
    gen = {"red": _square([0.78, 0.12, 0.1]), "green": _square([0.84, 0.3, 0.1])}
    plain = {m.uid: m for m in colour_match(gen, refs)}
    assert plain["red"].rank == 2 and plain["red"].nearest == "red-a0.5"  # the variant competes without objects
    got = {m.uid: m for m in colour_match(gen, refs, objects)}
    assert got["red"].rank == 1 and got["red"].matched and got["red"].nearest == "red-a0.5"
    np.testing.assert_allclose(got["red"].distance, np.linalg.norm(np.array([-0.02, 0.02, 0.0])))  # to its own uid
    # green's sample is orange: beaten by "orange" and by the red object (both of its renders), so rank 3
    assert got["green"].rank == 3 and got["green"].nearest == "orange" and not got["green"].matched
