"""``viewer.html``: a standalone, offline page showing an exported ``.glb`` interactively.

Google's ``<model-viewer>`` web component (npm ``@google/model-viewer``, installed by
``install.sh`` into ``tools/model_viewer/node_modules``) is inlined from its UMD build
(``dist/model-viewer-umd.min.js``, three.js included) and the model as a
``data:model/gltf-binary;base64,...`` URI: the page needs no network and no server
(file:// model URLs and the ES-module build do not load from disk in Chromium; this does).
The page orbits with the mouse (``camera-controls``), plays the animation, and has a play/pause
button and a time slider.

:func:`check_viewer` opens a page in headless Chromium (software WebGL) and reports whether the
model loaded and whether the animation time advances.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Union

from diffusion4d.browser import HEADLESS_FLAGS, find_chromium, require_chromium

PathLike = Union[str, Path]
REPO = Path(__file__).resolve().parents[2]
UMD_RELATIVE = Path("node_modules/@google/model-viewer/dist/model-viewer-umd.min.js")
TEMPLATE = Path(__file__).with_name("template.html")
ENV_VAR = "DIFFUSION4D_MODEL_VIEWER_JS"


def find_model_viewer_js() -> Path:
    """The UMD build of ``@google/model-viewer``: ``$DIFFUSION4D_MODEL_VIEWER_JS``, else
    ``tools/model_viewer/node_modules/...`` in the repository. Raises FileNotFoundError."""
    candidates = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    candidates.append(REPO / "tools" / "model_viewer" / UMD_RELATIVE)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"@google/model-viewer is not installed ({candidates[-1]} missing): run "
        "`npm install --prefix tools/model_viewer` (install.sh does) or set " + ENV_VAR
    )


def _version(js: Path) -> str:
    pkg = js.parents[1] / "package.json"
    try:
        return str(json.loads(pkg.read_text()).get("version", "?"))
    except (OSError, ValueError):
        return "?"


def write_viewer(glb: PathLike, html_path: Optional[PathLike] = None, title: Optional[str] = None) -> Path:
    """Write ``viewer.html`` (default: next to ``glb``) with the model-viewer build and ``glb`` inlined."""
    glb = Path(glb)
    html_path = Path(html_path) if html_path is not None else glb.with_name("viewer.html")
    js_path = find_model_viewer_js()
    js = js_path.read_text(encoding="utf-8")
    js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)  # cannot end the inline <script> early
    model = "data:model/gltf-binary;base64," + base64.b64encode(glb.read_bytes()).decode("ascii")
    page = TEMPLATE.read_text(encoding="utf-8")
    page = page.replace("__TITLE__", html.escape(title or glb.stem)).replace("__MV_VERSION__", _version(js_path))
    page = page.replace("__MODEL_SRC__", model)
    page = page.replace("__MODEL_VIEWER_JS__", js)  # last: nothing is substituted inside the library
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)
    return html_path


# ----------------------------------------------------------------------------- headless check
CHROMIUM_FLAGS = [*HEADLESS_FLAGS, "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--allow-file-access-from-files",
                  "--window-size=640,480", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"]

_STATE = ("JSON.stringify((function () { var mv = document.getElementById('viewer'); return mv ? {loaded: !!(mv.loaded "
          "|| window.d4dLoaded), error: window.d4dError || null, duration: mv.duration, animations: mv.availableAnimations, "
          "time: mv.currentTime, paused: mv.paused} : null; })())")


class _WebSocket:
    """The smallest text-frame WebSocket client (RFC 6455) the DevTools protocol needs (stdlib only)."""

    def __init__(self, url: str, timeout: float) -> None:
        import socket
        import urllib.parse

        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:80]!r}")

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket")
            buf += chunk
        return buf

    def send(self, text: str) -> None:
        import struct

        data = text.encode()
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536
                                  else bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        import struct

        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            if (b0 & 0x0F) == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if (b0 & 0x0F) in (0x9, 0xA):  # ping / pong: ignore
                continue
            parts.append(payload)
            if b0 & 0x80:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()


def check_viewer(html_path: PathLike, chromium: Optional[str] = None, wait_ms: int = 1500, timeout: float = 120.0) -> dict:
    """Open ``html_path`` in headless Chromium (software WebGL), poll it over the DevTools
    protocol (``Runtime.evaluate``) until model-viewer's model has loaded, then read
    ``currentTime`` (t1) and again at least ``wait_ms`` later, until it differs or 30 s more have
    passed (t2; the animation loops, so t2 may be below t1). Returns ``{loaded, error, duration,
    animations, t1, t2, paused}``."""
    import time
    import urllib.request

    chromium = require_chromium(chromium)
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", html_path.as_uri()],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ws = None
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not port_file.is_file() or len(port_file.read_text().split()) < 2:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"Chromium did not open its DevTools port (exit {proc.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            page = None
            while page is None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                    pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
                page = next((t for t in pages if t.get("url", "").startswith("file:")), None)
                if page is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("Chromium has no page for the viewer")
                    time.sleep(0.2)
            ws = _WebSocket(page["webSocketDebuggerUrl"], timeout)
            calls = iter(range(1, 1 << 30))

            def state() -> Optional[dict]:
                i = next(calls)
                ws.send(json.dumps({"id": i, "method": "Runtime.evaluate", "params": {"expression": _STATE, "returnByValue": True}}))
                while True:
                    msg = json.loads(ws.recv())
                    if msg.get("id") == i:
                        break
                value = msg.get("result", {}).get("result", {}).get("value")
                parsed = json.loads(value) if isinstance(value, str) else None
                return parsed if isinstance(parsed, dict) else None  # None: still navigating, or no viewer element

            out = {"loaded": False, "error": None, "t1": None, "t2": None}
            s0 = None
            while time.monotonic() < deadline:  # 1. the model loads
                s0 = state()
                if s0 and (s0["loaded"] or s0["error"]):
                    break
                time.sleep(0.25)
            if not s0 or not s0["loaded"]:
                out.update(s0 or {}, error=(s0 or {}).get("error") or "timeout")
                return out
            time.sleep(0.3)
            s1 = state()
            out.update(loaded=True, duration=s1["duration"], animations=s1["animations"], t1=s1["time"], paused=s1["paused"])
            end = time.monotonic() + wait_ms / 1000.0
            s2 = s1
            while time.monotonic() < min(deadline, end + 30.0):  # 2. its clock moves (software WebGL: slow frames)
                time.sleep(0.25)
                s2 = state() or s2
                if time.monotonic() >= end and s2["time"] != s1["time"]:
                    break
            out.update(t2=s2["time"], paused=s2["paused"], error=s2["error"])
            return out
        finally:
            if ws is not None:
                ws.close()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


__all__ = ["check_viewer", "find_chromium", "find_model_viewer_js", "write_viewer"]
