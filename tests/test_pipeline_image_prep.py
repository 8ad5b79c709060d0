"""Input-image preprocessing: the object is recentred and resized like training frames."""

import numpy as np
import pytest
from PIL import Image

from diffusion4d.errors import UserError
from diffusion4d.image_prep import default_object_fraction, load_image, prepare_image


def _bbox(alpha):
    ys, xs = np.nonzero(alpha > 127)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def test_default_fraction_is_the_unit_box_at_distance_2():
    # fov 49.13 deg: tan(24.57 deg) = 16/35 -> 1 / (4 * 16/35) = 35/64
    assert default_object_fraction() == pytest.approx(35.0 / 64.0)


def test_rgba_object_is_recentred_and_resized():
    img = np.zeros((100, 200, 4), np.uint8)
    img[10:30, 20:60] = (255, 0, 0, 255)  # 20 x 40 object in a corner
    out = prepare_image(img, size=64, object_fraction=0.5)
    assert out.shape == (64, 64, 4) and out.dtype == np.uint8
    top, bottom, left, right = _bbox(out[..., 3])
    assert right - left == 32 and bottom - top == 16  # longer side = 0.5 * 64, aspect kept
    assert (left + right) / 2 == pytest.approx(32, abs=1) and (top + bottom) / 2 == pytest.approx(32, abs=1)
    assert tuple(out[32, 32, :3]) == (255, 0, 0)


def test_rgb_on_plain_background():
    img = np.full((80, 80, 3), 40, np.uint8)  # dark grey background
    img[50:70, 5:25] = (20, 200, 20)
    out = prepare_image(img, size=32)
    top, bottom, left, right = _bbox(out[..., 3])
    side = round(default_object_fraction() * 32)
    assert abs((right - left) - side) <= 1 and abs((bottom - top) - side) <= 1
    assert out[0, 0, 3] == 0  # background is transparent (composited over white downstream)
    assert tuple(out[16, 16, :3]) == (20, 200, 20)


def test_busy_rgb_is_used_whole():
    img = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    out = prepare_image(img, size=32)
    assert out[..., 3].min() == 255 or out[..., 3].max() == 255


def test_errors(tmp_path):
    with pytest.raises(UserError, match="no foreground"):
        prepare_image(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(UserError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read"):
        load_image(tmp_path / "bad.png")
    Image.new("RGBA", (4, 4), (1, 2, 3, 0)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").shape == (4, 4, 4)
