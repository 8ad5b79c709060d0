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
