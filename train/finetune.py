"""``accelerate launch train/finetune.py --config configs/train/<preset>.yaml [key=value ...] [--resume latest]``.

The command module of the trainer: it parses the command line, calls :func:`train.trainer.run`
and turns errors into exit codes (0 done, 1 the loss diverged, 2 bad input, one line on stderr).
"""

import sys
from pathlib import Path
from typing import Optional, Sequence

if __package__ in (None, ""):  # run as a script from a source checkout (accelerate launch train/finetune.py)
    _REPO = str(Path(__file__).resolve().parent.parent)
    if _REPO not in sys.path:
        sys.path.insert(1, _REPO)

from diffusion4d.config import ConfigError, load_config  # noqa: E402
from diffusion4d.errors import UserError  # noqa: E402
from diffusion4d.logging_utils import setup_logging  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None):
    from diffusion4d.cli import OneLineParser

    p = OneLineParser(prog="train/finetune.py", description="Fine-tune the 4D-aware video diffusion model.")
    p.add_argument("--config", required=True, help="a shipped preset name (tiny, tiny_prior3d, prior3d, t2v, i2v, static3d) or a YAML file")
    p.add_argument("--resume", default=None, help="'latest' or a checkpoint-<step> folder")
    p.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; exit codes: 0 done, 1 diverged, 2 bad input."""
    from train.train_config import TrainConfig
    from train.trainer import TrainingDiverged, run

    setup_logging()
    args = parse_args(argv)
    try:
        from diffusion4d.presets import resolve_preset

        cfg = load_config(TrainConfig, resolve_preset("train", args.config), args.overrides)
        run(cfg, args.resume)
    except (ConfigError, UserError) as err:
        print(f"train/finetune.py: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"train/finetune.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
