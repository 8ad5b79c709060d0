"""Evaluation of generated and reconstructed 4D assets (the paper's Table 1 metrics).

Library entry::

    from diffusion4d.eval.api import run_metrics
    result = run_metrics(preds={"ours": "out/recon"}, gt="data/curated", output="eval_out")

Command line: ``python eval/run_metrics.py ...`` or ``diffusion4d evaluate ...`` (same options,
see :mod:`diffusion4d.eval.cli` and docs/evaluation.md). Heavy modules (torch models, transformers) are
imported only when a metric needs them.
"""

from typing import Any

# ``run_metrics`` is not re-exported here: ``diffusion4d.eval.run_metrics`` is the script module.
__all__ = ["EvalConfig", "EvalResult", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from diffusion4d.eval import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
