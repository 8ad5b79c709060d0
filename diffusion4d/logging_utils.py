"""Logging and progress conventions shared by every stage.

* Loggers come from :func:`get_logger` (plain ``logging``); :func:`setup_logging` configures
  the root handler once, and only the main process (rank 0 under ``accelerate``/``torchrun``)
  logs below WARNING.
* Anything that takes more than a few seconds iterates through :func:`progress`, a ``tqdm``
  bar shown on the main process only (and never when stderr is not a terminal unless forced).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def process_rank() -> int:
    """Global rank of this process (``RANK`` set by accelerate/torchrun), 0 when single-process."""
    for var in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def is_main_process() -> bool:
    return process_rank() == 0


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger: INFO (``verbosity=0``), DEBUG (``>=1``), WARNING (``<0``).

    Non-main ranks are limited to WARNING so multi-process runs print each message once.
    """
    level = logging.INFO if verbosity == 0 else (logging.DEBUG if verbosity > 0 else logging.WARNING)
    if not is_main_process():
        level = max(level, logging.WARNING)
    root = logging.getLogger()
    if not any(getattr(h, "_diffusion4d", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._diffusion4d = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # warnings about the environment, not the run, that would break the one-line error contract:
    # "No CUDA runtime is found" when a CPU kernel is compiled, "Setting accelerator to CPU"
    for noisy in ("torch.utils.cpp_extension", "DeepSpeed"):
        logging.getLogger(noisy).setLevel(max(level, logging.ERROR))


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def progress(
    iterable: Optional[Iterable[T]] = None,
    *,
    desc: str = "",
    total: Optional[int] = None,
    unit: str = "it",
    disable: Optional[bool] = None,
    leave: bool = False,
) -> "tqdm[T]":
    """A progress bar over ``iterable`` (or a manual one when ``iterable`` is None).

    Hidden on non-main ranks and when ``DIFFUSION4D_NO_PROGRESS=1``.
    """
    if disable is None:
        disable = not is_main_process() or os.environ.get("DIFFUSION4D_NO_PROGRESS") == "1"
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave, dynamic_ncols=True)


@contextmanager
def timed(timings: dict, key: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block, in seconds, to ``timings[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start
