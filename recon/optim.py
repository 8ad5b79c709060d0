"""A small Adam with ``torch.optim.Adam``'s layout, for the fitting loops.

Why not ``torch.optim.Adam``: building any ``torch.optim.Optimizer`` imports ``torch._dynamo``
(seconds of start-up on a small CPU machine, more than a whole ``test``-preset fit), and its
per-step machinery (hooks, profiling, foreach grouping) costs more than the update itself for
the few thousand Gaussians of a CPU fit. This class keeps what gsplat's densification
strategies read and rewrite: ``param_groups[i]["params"]`` (one tensor per group) and
``state[param]`` with ``exp_avg``/``exp_avg_sq`` (plus ``step``). The update is Adam's
(Kingma & Ba, bias-corrected, no weight decay), equal to ``torch.optim.Adam`` (tested).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterable, List, Union

import torch
from torch import Tensor


class Adam:
    """``Adam(params_or_groups, lr, betas=(0.9, 0.999), eps=1e-8)``; groups are dicts with
    ``params`` and optionally ``lr``, as for ``torch.optim``."""

    def __init__(
        self,
        params: Union[Iterable[Tensor], List[Dict]],
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [{"lr": lr, "betas": betas, "eps": eps, **g, "params": list(g["params"])} for g in groups]
        self.state: Dict[Tensor, Dict[str, Tensor]] = defaultdict(dict)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if "exp_avg" not in st:
                    st["step"] = torch.zeros((), dtype=torch.float32)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                t = float(st["step"])
                m, v = st["exp_avg"], st["exp_avg_sq"]
                m.lerp_(p.grad, 1.0 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1.0 - b2)
                denom = (v.sqrt() / (1.0 - b2**t) ** 0.5).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1.0 - b1**t))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()
