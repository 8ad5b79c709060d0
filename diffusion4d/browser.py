"""Headless Chromium for the checks that open HTML (the demo report, the export viewer).

One place says which binary is used and with which base flags; each check adds its own
(``--dump-dom`` for the report's media probe, SwiftShader WebGL and a DevTools port for the viewer).
"""

from __future__ import annotations

import shutil
from typing import List, Optional

#: flags every headless check starts Chromium with: no sandbox (containers), no network chatter
HEADLESS_FLAGS: List[str] = [
    "--headless",
    "--no-sandbox",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def find_chromium() -> Optional[str]:
    """The first Chromium-family binary on PATH (Debian's ``chromium`` first), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium(chromium: Optional[str] = None) -> str:
    """``chromium`` or the one on PATH; FileNotFoundError (one line) when there is none."""
    found = chromium or find_chromium()
    if found is None:
        raise FileNotFoundError("no Chromium found (install Debian's 'chromium' package)")
    return found
