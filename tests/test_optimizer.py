"""The trainer's fast optimizer paths against their reference loops.

``make_optimizer(..., fused=True)`` (torch's fused AdamW kernel) and the EMA's ``foreach`` update
are what a plain CPU/CUDA run uses; the per-parameter loops are the reference. Same updates,
to float32 rounding, over several steps on a tiny ModelScope-layout UNet's parameter shapes.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from diffusion4d.train.model_setup import make_optimizer


def _optim_cfg(**kw):
    base = dict(lr=2e-3, adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.01, adam_epsilon=1e-8, use_8bit_adam=False)
    base.update(kw)
    return SimpleNamespace(**base)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(4, 8, 3, padding=1), torch.nn.GroupNorm(4, 8), torch.nn.SiLU(), torch.nn.Conv3d(8, 4, 3, padding=1)
    )


def _train(model, optimizer, steps=5, ema=None):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(2, 4, 3, 6, 6, generator=g)
        loss = (model(x) - x).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(model.parameters())
    return model


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_adamw_matches_the_loop(weight_decay):
    ref, fast = _model(), _model()
    opt_ref = make_optimizer(ref.parameters(), _optim_cfg(weight_decay=weight_decay))
    opt_fast = make_optimizer(fast.parameters(), _optim_cfg(weight_decay=weight_decay), fused=True)
    assert opt_fast.defaults.get("fused") and not opt_ref.defaults.get("fused")
    _train(ref, opt_ref)
    _train(fast, opt_fast)
    moved = max((a - b).abs().max().item() for a, b in zip(ref.parameters(), _model().parameters()))
    assert moved > 1e-3  # the check below compares real updates, not two untouched models
    for a, b in zip(ref.parameters(), fast.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ema_foreach_matches_the_loop():
    from diffusers.training_utils import EMAModel

    ref, fast = _model(), _model()
    ema_ref = EMAModel(ref.parameters(), decay=0.99, foreach=False)
    ema_fast = EMAModel(fast.parameters(), decay=0.99, foreach=True)
    _train(ref, make_optimizer(ref.parameters(), _optim_cfg()), ema=ema_ref)
    _train(fast, make_optimizer(fast.parameters(), _optim_cfg()), ema=ema_fast)
    out_ref, out_fast = copy.deepcopy(ref), copy.deepcopy(fast)
    ema_ref.copy_to(out_ref.parameters())
    ema_fast.copy_to(out_fast.parameters())
    for a, b in zip(out_ref.parameters(), out_fast.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
