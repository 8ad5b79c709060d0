"""``python -m diffusion4d``: the same as the ``diffusion4d`` console script."""

import sys

from diffusion4d.app import main

if __name__ == "__main__":
    sys.exit(main())
