"""Evaluation of generated and reconstructed 4D assets (the paper's Table 1 metrics).

Library entry::

    from eval import run_metrics
    result = run_metrics(preds={"ours": "out/recon"}, gt="data/curated", output="eval_out")

Command line: ``python eval/run_metrics.py ...`` or ``diffusion4d evaluate ...`` (same options,
see :mod:`eval.cli` and docs/evaluation.md). Heavy modules (torch models, transformers) are
imported only when a metric needs them.
"""

from typing import Any

__all__ = ["run_metrics", "EvalConfig", "EvalResult"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from eval import api

        return getattr(api, name)
    raise AttributeError(f"module 'eval' has no attribute {name!r}")
