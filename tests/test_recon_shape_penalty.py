"""The anisotropy penalty on the Gaussians' scales (``loss.anisotropy``, ``loss.max_anisotropy``)."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion4d.recon.fit import Views, fit_static
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.losses import anisotropy_penalty, anisotropy_penalty_reference
from diffusion4d.recon.recon_config import load_recon_config

#: a camera 2 units from the origin looking at it (OpenCV axes)
LOOK_AT_ORIGIN = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 2.0], [0, 0, 0, 1]])
K = torch.tensor([[30.0, 0, 12], [0, 30.0, 12], [0, 0, 1]])


def test_the_penalty_equals_the_loop_over_gaussians_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    log_scales = (torch.randn(50, 3, generator=g, dtype=torch.float64) * 1.5).requires_grad_(True)
    for ratio in (1.0, 4.0, 20.0):
        fast, ref = anisotropy_penalty(log_scales, ratio), anisotropy_penalty_reference(log_scales, ratio)
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
        (gf,) = torch.autograd.grad(fast, log_scales)
        (gr,) = torch.autograd.grad(ref, log_scales)
        torch.testing.assert_close(gf, gr, rtol=1e-9, atol=1e-12)


def test_the_penalty_is_zero_up_to_the_allowed_ratio_and_the_log_excess_past_it():
    within = torch.log(torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]]))
    assert float(anisotropy_penalty(within, 4.0)) == 0.0
    stretched = torch.log(torch.tensor([[1.0, 1.0, 8.0], [0.5, 1.0, 1.0]]))
    # the first is 8x longer than wide: log(8) - log(4) = log 2; the second is within 4x
    assert float(anisotropy_penalty(stretched, 4.0)) == pytest.approx(math.log(2.0) / 2, rel=1e-6)
    assert float(anisotropy_penalty(torch.zeros(0, 3), 4.0)) == 0.0


def _fit(weight: float) -> GaussianModel:
    cfg = load_recon_config("test", ["backend=torch", "coarse.densify.enabled=false", "loss.anisotropy=%g" % weight])
    model = GaussianModel.random(40, sh_degree=0, init_opacity=0.8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # needles: 10x longer along x than across
        model.params["scales"][:] = torch.log(torch.tensor([0.2, 0.02, 0.02]))
    views = Views(torch.ones(1, 24, 24, 3) * 0.5, LOOK_AT_ORIGIN[None], K[None].clone(), torch.zeros(1), 24, 24)
    fit_static(model, views, cfg, 30)
    return model


def test_the_coarse_fit_rounds_needles_only_when_the_penalty_is_on():
    """The same fit from the same needles: with the penalty their axes' spread shrinks toward the
    allowed ratio; with weight 0 (the default) the penalty is not part of the loss."""
    spread = lambda m: float((m.params["scales"].max(-1).values - m.params["scales"].min(-1).values).mean().detach())  # noqa: E731
    free, penalised = _fit(0.0), _fit(10.0)
    assert spread(penalised) < spread(free) - 0.2
    assert spread(free) > math.log(10.0) - 0.3  # the image alone barely changes a needle's shape here


def test_bad_penalty_settings_are_refused():
    with pytest.raises(ValueError, match="anisotropy"):
        load_recon_config("test", ["loss.anisotropy=-1"])
    with pytest.raises(ValueError, match="max_anisotropy"):
        load_recon_config("test", ["loss.max_anisotropy=0.5"])
