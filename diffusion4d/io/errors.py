"""Errors of the on-disk readers: a bad file is the user's input, so these are
:class:`~diffusion4d.errors.UserError` (one line, exit 2 on the command line) and, for callers
written before the checks, also the built-in error the readers raised before
(``ValueError`` for a malformed file, ``FileNotFoundError`` for a missing one)."""

from diffusion4d.errors import UserError


class InvalidInputError(UserError, ValueError):
    """A file exists but its content breaks the contract; the message names the file and the field."""


class MissingInputError(UserError, FileNotFoundError):
    """A file the contract requires is missing; the message names it."""


__all__ = ["InvalidInputError", "MissingInputError"]
