"""The one gate for names that become paths: asset uids, sample names, file stems.

A name that a stage turns into a folder or file (``<output>/<uid>/``, ``<output>/<sample>/``)
must be a **safe name**:

* 1 to 128 characters from ``A-Z a-z 0-9 . _ -``, the first one a letter or a digit
  (regular expression :data:`SAFE_NAME_PATTERN`);
* hence never ``.`` or ``..``, never empty, never hidden (leading ``.``), and never holding a
  path separator (``/``, ``\\``), a drive (``C:``) or any whitespace/control character.

:func:`safe_name` checks a given name (a user's ``--name``, an Objaverse uid from a list) and
raises :class:`~diffusion4d.errors.UserError` naming the rule; :func:`is_safe_name` is the
predicate; :func:`make_safe_name` derives a safe name from arbitrary text (a file stem with
spaces or non-ASCII letters) and is stable for the same input. :func:`join_inside` joins a root
and a name and refuses anything that resolves outside the root (symlinks included).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Union

from diffusion4d.errors import UserError

PathLike = Union[str, os.PathLike]

#: the safe-name rule (see the module docstring)
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SAFE_NAME_RULE = "1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit (no path separators, no '..')"
_SAFE = re.compile(SAFE_NAME_PATTERN)
MAX_LEN = 128


class UnsafeNameError(UserError, ValueError):
    """A name that would become a path breaks the safe-name rule (also a ValueError)."""


def is_safe_name(name: object) -> bool:
    """True when ``name`` is a str following the safe-name rule."""
    return isinstance(name, str) and _SAFE.match(name) is not None and name not in (".", "..")


def safe_name(name: object, what: str = "name") -> str:
    """``name`` itself when it is safe; else :class:`UnsafeNameError` (a UserError) naming the rule.

    ``what`` says what the name is, for the message (``"uid"``, ``"--name"``, ``"sample name"``).
    """
    if is_safe_name(name):
        return name  # type: ignore[return-value]
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        why = "it is empty"
    elif name in (".", ".."):
        why = f"{name!r} is not a name"
    elif os.path.isabs(name) or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        why = "it is an absolute path"
    elif "/" in name or "\\" in name:
        why = "it contains a path separator"
    elif len(name) > MAX_LEN:
        why = f"it is longer than {MAX_LEN} characters"
    elif not name[0].isascii() or not name[0].isalnum():
        why = "it does not start with a letter or digit"
    else:
        why = "it contains a character outside A-Z a-z 0-9 . _ -"
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise UnsafeNameError(f"unsafe {what} {shown!r}: {why} (rule: {SAFE_NAME_RULE})")


def make_safe_name(text: str, fallback: str = "asset") -> str:
    """A safe name derived from ``text``: ``text`` itself when already safe, else the text with
    every run of other characters replaced by ``_`` plus ``-<8 hex digits of its sha1>`` (so two
    different texts never collide), truncated to the length limit."""
    if is_safe_name(text):
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    body = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    body = re.sub(r"^[^A-Za-z0-9]+", "", body)[: MAX_LEN - 9].rstrip("._-")
    return f"{body or fallback}-{digest}"


def join_inside(root: PathLike, name: str, what: str = "name") -> Path:
    """``root / name`` after checking ``name`` with :func:`safe_name` and that the result,
    symlinks resolved, stays inside ``root``; else :class:`UnsafeNameError`."""
    safe_name(name, what)
    root_path = Path(root)
    path = root_path / name
    real_root = os.path.realpath(root_path)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise UnsafeNameError(f"{what} {name!r} resolves outside {root} (to {real})")
    return path


__all__ = ["SAFE_NAME_PATTERN", "SAFE_NAME_RULE", "UnsafeNameError", "is_safe_name", "join_inside", "make_safe_name",
           "safe_name"]
