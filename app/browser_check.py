"""Open an HTML report in headless Chromium and check that every media element loaded.

Used by the tests and by ``diffusion4d demo --check-browser``. It needs only a Chromium binary:
a copy of the page gets a small script that waits, then writes the state of every ``<video>``
(``readyState >= 2``: a frame decoded) and ``<img>`` (``complete`` with a natural width) into
the DOM, which ``--dump-dom`` prints after a virtual-time budget.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from diffusion4d.browser import HEADLESS_FLAGS, find_chromium, require_chromium  # noqa: F401  (find_chromium: re-exported)

_PROBE = """
<script>
window.addEventListener('load', function () {
  var vids = Array.from(document.querySelectorAll('video'));
  vids.forEach(function (v) { v.preload = 'auto'; try { v.play(); } catch (e) {} });
  var polls = 0;
  function report() {
    var state = vids.map(function (v, i) {
      return {i: i, ready: v.readyState, w: v.videoWidth, err: v.error ? v.error.code : null};
    });
    var imgs = Array.from(document.querySelectorAll('img')).map(function (m, i) {
      return {i: i, ok: m.complete && m.naturalWidth > 0};
    });
    var pending = state.some(function (v) { return v.ready < 2 && v.err === null; });
    if (pending && polls++ < 300) { setTimeout(report, 200); return; }
    var pre = document.createElement('pre');
    pre.id = 'd4d-media-probe';
    pre.textContent = JSON.stringify({videos: state, images: imgs});
    document.body.appendChild(pre);
  }
  setTimeout(report, 500);
});
</script>
"""

_FLAGS = [*HEADLESS_FLAGS, "--disable-gpu", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]


@dataclass
class MediaCheck:
    videos: List[dict] = field(default_factory=list)
    images: List[dict] = field(default_factory=list)

    @property
    def failed_videos(self) -> List[dict]:
        return [v for v in self.videos if v["ready"] < 2 or v["err"] is not None or not v["w"]]

    @property
    def failed_images(self) -> List[dict]:
        return [m for m in self.images if not m["ok"]]

    @property
    def ok(self) -> bool:
        return not self.failed_videos and not self.failed_images


def _run(chromium: str, args: List[str], profile: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_media(
    html_path: Path, screenshot: Optional[Path] = None, chromium: Optional[str] = None, timeout: float = 180.0, attempts: int = 2
) -> MediaCheck:
    """Load ``html_path`` headless; return the load state of every video and image.

    The page is polled until every video has a decoded frame (or ~60 s of page time); on a busy
    machine a second load is tried before reporting failures. Writes a screenshot when asked.
    """
    result = _check_once(html_path, screenshot, chromium, timeout)
    for _ in range(attempts - 1):
        if result.ok:
            break
        result = _check_once(html_path, screenshot, chromium, timeout)
    return result


def _check_once(html_path: Path, screenshot: Optional[Path], chromium: Optional[str], timeout: float) -> MediaCheck:
    chromium = require_chromium(chromium)
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        probe_page = html_path.with_name(f".{html_path.stem}.probe.html")
        text = html_path.read_text()
        probe_page.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE)
        try:
            proc = _run(chromium, ["--virtual-time-budget=90000", "--dump-dom", probe_page.as_uri()], os.path.join(tmp, "p1"), timeout)
        finally:
            probe_page.unlink(missing_ok=True)
        match = re.search(r'<pre id="d4d-media-probe">(.*?)</pre>', proc.stdout, re.S)
        if not match:
            raise RuntimeError(f"Chromium did not report media state (exit {proc.returncode}): {proc.stderr[-500:]}")
        data = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            _run(
                chromium,
                ["--virtual-time-budget=8000", f"--screenshot={screenshot}", "--window-size=1200,2400", html_path.as_uri()],
                os.path.join(tmp, "p2"),
                timeout,
            )
    return MediaCheck(videos=data["videos"], images=data["images"])
