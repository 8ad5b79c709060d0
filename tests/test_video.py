import numpy as np
import pytest

from diffusion4d.io.video import read_video, write_video


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_video_round_trip(tmp_path, suffix):
    frames = np.zeros((5, 17, 20, 4), dtype=np.uint8)
    for i in range(5):
        frames[i, :, : 4 * (i + 1)] = (255, 0, 0, 255)  # a red bar growing over time
    path = write_video(tmp_path / f"v{suffix}", frames, fps=5)
    back = read_video(path)
    assert back.shape[0] == 5 and back.shape[1] >= 17 and back.shape[2] >= 20
    # transparent pixels composite to white, opaque red stays red
    assert back[0, 8, 15].min() > 200
    assert back[4, 8, 2, 0] > 200 and back[4, 8, 2, 1] < 60
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_suffix(tmp_path):
    with pytest.raises(ValueError, match="unsupported"):
        write_video(tmp_path / "x.avi", np.zeros((1, 4, 4, 3), np.uint8))
