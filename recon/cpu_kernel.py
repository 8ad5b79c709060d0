"""The compiled CPU kernels (projection and compositing) behind the ``cpu`` rasteriser backend.

``recon/csrc/composite_cpu.cpp`` and ``recon/csrc/project_cpu.cpp`` (C++ with OpenMP) are built with
``torch.utils.cpp_extension.load`` at first use and cached by torch (``$TORCH_EXTENSIONS_DIR``,
default ``~/.cache/torch_extensions``, one build per environment: :func:`extension_name`); later processes load the cached build in well under a
second. When no C++ compiler is present, the build fails, or ``D4D_RECON_NO_CPP=1`` is set,
:func:`load` returns None once and the ``auto`` backend falls back to the pure-torch tiled
rasteriser (same results, slower).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

SOURCES = [Path(__file__).resolve().parent / "csrc" / name for name in ("composite_cpu.cpp", "project_cpu.cpp")]
_lock = threading.Lock()
_module: Any = None
_tried = False
_error: Optional[str] = None


def load(verbose: bool = False) -> Optional[Any]:
    """The compiled module, or None when it cannot be built here (reason in :func:`error`)."""
    global _module, _tried, _error
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        if os.environ.get("D4D_RECON_NO_CPP", "") not in ("", "0"):
            _error = "disabled by D4D_RECON_NO_CPP"
        elif shutil.which(os.environ.get("CXX", "c++")) is None:
            _error = "no C++ compiler (c++) on PATH"
        else:
            try:
                from torch.utils.cpp_extension import load as cpp_load

                with _own_ninja_first():
                    _module = cpp_load(
                        name=extension_name(),
                        sources=[str(p) for p in SOURCES],
                        extra_cflags=["-O3", "-fopenmp"],
                        extra_ldflags=["-fopenmp"],
                        verbose=verbose,
                    )
            except Exception as err:  # compiler errors, missing headers, ...
                _error = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
                _module = None
        if _module is None:
            log.warning("compiled CPU rasteriser unavailable (%s); using the pure-torch tiled one", _error)
        _tried = True
        return _module


@contextlib.contextmanager
def _own_ninja_first():
    """PATH with this environment's ninja (the ``ninja`` package) first, while torch builds.

    torch runs whichever ``ninja`` PATH finds first. A process started from an activated virtual
    environment finds the environment's, one started as ``.venv/bin/diffusion4d`` the system's (or none:
    then no build at all); two ninja versions do not read each other's build log, so each one rebuilt the
    kernel from scratch (~1 min) whenever the other had built it last."""
    try:
        import ninja

        own = ninja.BIN_DIR
    except (ImportError, AttributeError):
        yield
        return
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([own, before]) if before else own
    try:
        yield
    finally:
        os.environ["PATH"] = before


def extension_name() -> str:
    """The build's name, one per Python environment and torch build: two virtual environments
    sharing ``~/.cache/torch_extensions`` would otherwise rebuild over each other's library."""
    import hashlib
    import sys

    import torch

    tag = hashlib.sha1(f"{sys.prefix}|{torch.__version__}|{torch.__file__}".encode()).hexdigest()[:10]
    return f"d4d_recon_composite_cpu_{tag}"


def available() -> bool:
    return load() is not None


def error() -> Optional[str]:
    """Why :func:`load` returned None (None when it has not been tried or succeeded)."""
    return _error
