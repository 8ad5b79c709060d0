"""Finding a Blender executable: one rule for every stage that runs Blender as a subprocess
(the curation's Blender renderer, the export's import check)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional


def blender_executable(blender: Optional[str] = None) -> Optional[str]:
    """``blender`` (an executable or a folder holding one; ``FileNotFoundError`` when it is
    neither), else ``blender`` on ``PATH``, else ``None``."""
    if blender:
        p = Path(blender)
        if p.is_dir():
            p = p / "blender"
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise FileNotFoundError(f"{blender}: no Blender executable there")
        return str(p)
    return shutil.which("blender")


__all__ = ["blender_executable"]
