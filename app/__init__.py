"""The app layer: the ``diffusion4d`` command line, the demo and its report.

Each subcommand lives in its own module, next to the stage it drives, and is imported lazily
when the parser is built. The core library imports no stage and nothing from this package
(enforced by the import-linter contracts in ``.importlinter``). A
command module defines::

    COMMAND = "name"
    HELP = "one line"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

``diffusion4d --help`` lists the commands whose module is installed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import importlib.util
import sys
from typing import Dict, List, Optional

from diffusion4d import __version__
from diffusion4d.command_line import OneLineParser
from diffusion4d.errors import UserError
from diffusion4d.logging_utils import setup_logging

#: subcommand name -> module implementing it (in the order ``--help`` lists them).
COMMAND_MODULES: Dict[str, str] = {
    "assets": "diffusion4d.data_curation.procedural.cli",
    "curate": "diffusion4d.data_curation.cli",
    "train": "diffusion4d.train.finetune",
    "train-autoencoder": "diffusion4d.train.autoencoder",
    "generate": "diffusion4d.app.generate",
    "reconstruct": "diffusion4d.recon.cli",
    "export": "diffusion4d.recon.export_cli",
    "evaluate": "diffusion4d.eval.cli",
    "demo": "diffusion4d.app.demo",
}


def _available_commands() -> Dict[str, str]:
    found = {}
    for name, module in COMMAND_MODULES.items():
        package = module.rsplit(".", 1)[0]
        try:
            if importlib.util.find_spec(package) is not None:  # the stage package is installed
                found[name] = module
        except ModuleNotFoundError:
            continue
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="diffusion4d",
        description="4D generation with video diffusion: curate, train, generate, reconstruct, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"diffusion4d {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module_name in _available_commands().items():
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # an installed command that cannot load says why when it is run
            module = _Broken(name, module_name, err)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module, _parser=cmd)
    return parser


class _Broken:
    """Stands in for a command module whose import failed: listed, and one line when run."""

    def __init__(self, name: str, module_name: str, err: BaseException):
        self.HELP = f"(cannot load: {type(err).__name__})"
        self._message = f"the {name} command ({module_name}) cannot load: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("rest", nargs="*")

    def run(self, args: argparse.Namespace) -> int:
        raise UserError(self._message)


#: OS errors about the user's paths: reported as one line, exit 2, like a UserError
_PATH_ERRORS = (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (a multi-line message is joined with ' | ')."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " | ".join(lines) or type(err).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if isinstance(getattr(args, "_module", None), _Broken):  # say why the command cannot run, not how it was called
        print(f"diffusion4d {args.command}: error: {args._module._message}", file=sys.stderr)
        return 2
    if extra:  # reported by the subcommand's parser, so the line reads "diffusion4d <cmd>: error: ..."
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        return int(args._module.run(args) or 0)
    except UserError as err:
        print(f"diffusion4d {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except _PATH_ERRORS as err:  # the user's paths (an output that is a file, a read-only folder): one line
        logging.getLogger(__name__).debug("%s failed", args.command, exc_info=True)
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        print(f"diffusion4d {args.command}: error: {err.strerror or type(err).__name__}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffusion4d {args.command}: interrupted", file=sys.stderr)
        return 130
