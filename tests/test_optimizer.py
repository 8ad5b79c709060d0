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


def test_the_trainer_uses_the_fast_update_only_when_asked(tmp_path):
    """``optim.fused=true`` on a plain CPU run: fused AdamW and a foreach EMA, and the same losses as the
    default loops (3 steps, to float rounding); the default stays on the loops."""
    from accelerate.state import AcceleratorState, GradientState

    from diffusion4d.config import load_config
    from diffusion4d.testing.orbits import write_synthetic_dataset
    from diffusion4d.train.train_config import TrainConfig
    from diffusion4d.train.trainer import Trainer

    write_synthetic_dataset(tmp_path / "data", num_assets=2, num_frames=4, size=16, orbits=1)
    small = ["data.resolution=16", "data.num_frames=4", "model.tiny_block_out_channels=[16,32]", "model.tiny_attention_head_dim=4",
             "batch_size=2", "num_threads=1", "report_to=none", "ema=true", f"data.root={tmp_path / 'data'}"]  # fmt: skip
    losses, n = {}, torch.get_num_threads()
    try:
        for fused in (False, True):
            AcceleratorState._reset_state(True)
            GradientState._reset_state()
            cfg = load_config(TrainConfig, None, small + [f"optim.fused={str(fused).lower()}", f"output_dir={tmp_path / str(fused)}"])
            trainer = Trainer(cfg)
            trainer.setup()
            optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
            assert bool(optimizer.defaults.get("fused")) == fused
            assert trainer.ema.foreach == fused
            row = []
            for i in range(3):
                out = trainer.loss_on(trainer.batch_at(i), i)
                trainer.acc.backward(out["loss"])
                trainer.optimizer.step()
                trainer.optimizer.zero_grad(set_to_none=True)
                row.append(float(out["loss"]))
            losses[fused] = row
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        torch.set_num_threads(n)
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
