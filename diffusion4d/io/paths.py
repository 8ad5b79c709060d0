"""Output folders given on the command line: checked before anything is written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

from diffusion4d.errors import UserError

PathLike = Union[str, os.PathLike]


def check_output_dir(path: PathLike, what: str = "--output") -> Path:
    """UserError (one line) unless ``path`` is an existing folder or could be created as one:
    it must not be an existing file, and its nearest existing ancestor must be a writable folder.
    Writes nothing."""
    path = Path(path)
    if str(path).strip() == "":
        raise UserError(f"{what} is empty")
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{what} {path} exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"{what} {path} is not writable")
        return path
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: cannot create it, {parent} is not writable")
    return path


def ensure_output_dir(path: PathLike, what: str = "--output") -> Path:
    """:func:`check_output_dir`, then create the folder (and its parents); returns it."""
    path = check_output_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{what} {path}: cannot create the folder ({err.strerror or type(err).__name__})") from None
    return path


__all__ = ["check_output_dir", "ensure_output_dir"]
