"""Script entry: ``python eval/run_metrics.py --pred NAME=DIR --gt DIR --output OUT [...]``.

A thin wrapper around :func:`diffusion4d.eval.cli.main` (same options as ``diffusion4d evaluate``);
it needs the installed package (``pip install -e .``). The library function of the same name is
:func:`diffusion4d.eval.api.run_metrics`.
"""

import sys

from diffusion4d.eval.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
