"""Argument parsing shared by every command (the ``diffusion4d`` subcommands and the script entries)."""

import argparse
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr, ``<prog>: error: <message> (see <prog>
    --help)``, exit status 2: the usage block is left to ``--help``. Subparsers inherit the class."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
