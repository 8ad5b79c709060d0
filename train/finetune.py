"""The trainer's command: ``accelerate launch train/finetune.py --config <preset> [key=value ...] [--resume latest]``.

The same command is ``diffusion4d train`` (one process, or under ``accelerate launch -m
diffusion4d train``). It parses the command line, calls :func:`diffusion4d.train.trainer.run`
and turns errors into exit codes: 0 done, 1 the loss diverged, 2 bad input (one line on stderr).
Running this file as a script needs the installed package (``pip install -e .``).
"""

import argparse
import sys
from typing import Optional, Sequence

try:
    from diffusion4d.command_line import OneLineParser
    from diffusion4d.config import ConfigError, load_config
    from diffusion4d.errors import UserError
    from diffusion4d.logging_utils import setup_logging
except ModuleNotFoundError as err:  # run as a script from a checkout that was never installed
    if err.name != "diffusion4d":
        raise
    sys.exit("train/finetune.py: error: the diffusion4d package is not installed; run `pip install -e .` in the repository first")

COMMAND = "train"
HELP = "fine-tune the 4D-aware video diffusion model (multi-GPU: accelerate launch train/finetune.py)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a shipped preset name (tiny, tiny_prior3d, prior3d, t2v, i2v, static3d) or a YAML file")
    parser.add_argument("--resume", default=None, help="'latest' or a checkpoint-<step> folder")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="key.sub=value config overrides")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog="train/finetune.py", description="Fine-tune the 4D-aware video diffusion model.")
    add_arguments(parser)
    return parser.parse_args(argv)


def run(args: argparse.Namespace, prog: str = "diffusion4d train") -> int:
    """Train with the parsed arguments; exit codes: 0 done, 1 diverged, 2 bad input."""
    from diffusion4d.presets import resolve_preset
    from diffusion4d.train.train_config import TrainConfig
    from diffusion4d.train.trainer import TrainingDiverged, run as train

    try:
        cfg = load_config(TrainConfig, resolve_preset("train", args.config), args.overrides)
        train(cfg, args.resume)
    except (ConfigError, UserError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Script entry (``accelerate launch train/finetune.py ...``)."""
    setup_logging()
    return run(parse_args(argv), prog="train/finetune.py")


if __name__ == "__main__":
    sys.exit(main())
