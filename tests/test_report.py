import numpy as np
import pytest

from diffusion4d.app import report as R
from diffusion4d.app.browser_check import check_media, find_chromium


def _frames(n=6, size=24):
    f = np.zeros((n, size, size, 4), np.uint8)
    for i in range(n):
        f[i, 4:12, 2 + 2 * i : 10 + 2 * i] = (200, 30, 30, 255)
    return f


def _report(tmp_path):
    rep = R.Report("test report", "subtitle")
    rep.add("videos", R.row([R.video_tag(_frames(), caption="a"), R.image_tag(_frames()[0], caption="b")]))
    rep.add("plot", R.line_plot({"loss": ([0, 1, 2], [1.0, 0.5, 0.25])}, title="loss", log_y=True))
    rep.add("table", R.table(["method", "psnr"], [["x", 20.5], ["y", float("nan")]]))
    return rep.write(tmp_path / "report.html")


def test_report_is_self_contained(tmp_path):
    path = _report(tmp_path)
    text = path.read_text()
    assert text.count("data:video/webm;base64,") == 1 and text.count("data:image/png;base64,") == 1
    assert "<svg" in text and "n/a" in text and "src=\"http" not in text


def test_frame_sheet_places_every_frame():
    """Reference: each frame read back from its slot of the sheet, enlarged by repeating pixels."""
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 255, (3, 5, 4, 3), dtype=np.uint8), rng.integers(0, 255, (2, 5, 4, 3), dtype=np.uint8)]
    sheet = R.frame_sheet(rows, scale=2, gap=3)
    assert sheet.shape == (2 * 10 + 3, 3 * 8 + 2 * 3, 3) and sheet.dtype == np.uint8
    for i, frames in enumerate(rows):
        for j, frame in enumerate(frames):
            slot = sheet[i * 13:i * 13 + 10, j * 11:j * 11 + 8]
            assert np.array_equal(slot[::2, ::2], frame) and np.array_equal(slot[1::2, 1::2], frame)
    assert (sheet[10:13] == 255).all() and (sheet[:, 8:11] == 255).all()  # white gaps
    assert (sheet[13:, 22:] == 255).all()  # the shorter row ends in white
    tag = R.image_tag(sheet, caption="every frame", sheet=True)
    assert tag.startswith('<figure class="sheet"><img src="data:image/png;base64,')
    with pytest.raises(ValueError, match="one H, W"):
        R.frame_sheet([rows[0], np.zeros((2, 6, 4, 3), np.uint8)])
    with pytest.raises(ValueError, match="at least one row"):
        R.frame_sheet([])


def test_markdown_table_conversion():
    html = R.markdown_table_to_html("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert html.count("<tr>") == 2 and "<th>a</th>" in html


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")
def test_report_media_load_in_headless_chromium(tmp_path):
    path = _report(tmp_path)
    result = check_media(path, screenshot=tmp_path / "shot.png")
    assert len(result.videos) == 1 and len(result.images) == 1
    assert result.ok, (result.failed_videos, result.failed_images)
    assert (tmp_path / "shot.png").stat().st_size > 1000


@pytest.mark.skipif(find_chromium() is None, reason="Chromium not installed")
def test_browser_check_detects_a_broken_image(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="data:image/png;base64,AAAA"></body></html>')
    result = check_media(page)
    assert not result.ok and len(result.failed_images) == 1
