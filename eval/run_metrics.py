"""Script entry: ``python eval/run_metrics.py --pred NAME=DIR --gt DIR --output OUT [...]``.

A thin wrapper around :func:`eval.cli.main` (same options as ``diffusion4d evaluate``).
Running a file puts its folder (``eval/``) first on ``sys.path``; that folder is removed
before the package is imported so that nothing in it can shadow a top-level module.
"""

import os
import sys

if __name__ == "__main__":
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    _root = os.path.dirname(_here)
    if _root not in sys.path:
        sys.path.append(_root)  # the repository, when the package is not installed
    from eval.cli import main

    sys.exit(main(sys.argv[1:]))
else:
    # Imported as ``eval.run_metrics``: importing a submodule rebinds ``eval.run_metrics`` to the
    # module, which would hide the library function of the same name. Keep it callable.
    import types

    class _CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            from eval.api import run_metrics

            return run_metrics(*args, **kwargs)

    sys.modules[__name__].__class__ = _CallableModule
