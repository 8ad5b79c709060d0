"""``accelerate launch train/finetune.py --config configs/train/<preset>.yaml [key=value ...] [--resume latest]``."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:  # works from a source checkout too, not only after `pip install -e .`
    sys.path.insert(1, _REPO)

from train.trainer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
