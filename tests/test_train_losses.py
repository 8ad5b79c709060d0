"""diffusion4d.train.losses: targets, clean-sample estimate, L_mr against a hand computation and gradcheck."""

import math

import pytest
import torch

from diffusers import DDPMScheduler

from diffusion4d.train import losses as L
from diffusion4d.train.trainer import TrainingDiverged, check_finite


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sched(pt):
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type=pt)


@pytest.mark.parametrize("pt", ["epsilon", "v_prediction"])
def test_targets_and_clean_estimate_match_diffusers(pt):
    s = _sched(pt)
    z0, noise = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    t = torch.tensor([3, 900])
    z_t = L.add_noise(s.alphas_cumprod, z0, noise, t)
    torch.testing.assert_close(z_t, s.add_noise(z0, noise, t))
    target = L.diffusion_target(pt, s.alphas_cumprod, z0, noise, t)
    if pt == "v_prediction":
        torch.testing.assert_close(target, s.get_velocity(z0, noise, t))
    # a perfect prediction recovers z0 exactly
    torch.testing.assert_close(L.predicted_clean_sample(pt, s.alphas_cumprod, z_t, target, t), z0, rtol=1e-4, atol=1e-4)


def test_mr_loss_hand_computation():
    z0 = torch.zeros(1, 1, 2, 1, 2)
    z0[0, 0, 0, 0] = torch.tensor([1.0, 3.0])  # frame 0 differs from static by (1, 3); frame 1 equal
    zs = torch.zeros_like(z0)
    zhat = torch.zeros_like(z0)
    zhat[0, 0, 1, 0] = torch.tensor([2.0, 0.0])
    # m(z0) = 1/2 * ((1 + 9)/2 + 0) = 2.5 ; m(zhat) = 1/2 * (0 + 4/2) = 1 ; L = 1.5^2
    assert math.isclose(L.motion_reconstruction_loss(z0, zhat, zs).item(), 2.25, rel_tol=1e-6)
    # sum form: m = 1/2 * 10 = 5 and 1/2 * 4 = 2 -> 9
    assert math.isclose(L.motion_reconstruction_loss(z0, zhat, zs, reduction="sum").item(), 9.0, rel_tol=1e-6)
    w = torch.tensor([0.5])
    assert math.isclose(L.motion_reconstruction_loss(z0, zhat, zs, weights=w).item(), 1.125, rel_tol=1e-6)


def test_mr_loss_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64)
    zs = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64)
    zhat = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: L.motion_reconstruction_loss(z0, x, zs), (zhat,))
    # through the clean-sample estimate, as in training
    s = _sched("epsilon")
    ac = s.alphas_cumprod.double()
    z_t = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 2, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([10, 500])
    f = lambda e: L.motion_reconstruction_loss(z0, L.predicted_clean_sample("epsilon", ac, z_t, e, t), zs)  # noqa: E731
    assert torch.autograd.gradcheck(f, (eps,))


def test_total_loss_combines_with_omega():
    s = _sched("epsilon")
    z0, noise, zs = torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4)
    t = torch.tensor([5, 50])
    z_t = L.add_noise(s.alphas_cumprod, z0, noise, t)
    pred = noise + 0.1 * torch.randn_like(noise)
    out = L.total_loss(pred, z0=z0, z_t=z_t, noise=noise, z_static=zs, timesteps=t, alphas_cumprod=s.alphas_cumprod,
                       prediction_type="epsilon", omega=0.5, mr_weighting="none")
    zhat = L.predicted_clean_sample("epsilon", s.alphas_cumprod, z_t, pred, t)
    expected = torch.mean((pred - noise) ** 2) + 0.5 * L.motion_reconstruction_loss(z0, zhat, zs)
    torch.testing.assert_close(out["loss"], expected)


def test_frame_deviation_weight_adds_the_per_frame_part_of_the_error():
    """``frame_deviation_weight = k`` adds k x the mean square of the error's deviation from its mean over
    the frames (a loop over frames here); an error the same in every frame adds nothing."""
    s = _sched("v_prediction")
    g = torch.Generator().manual_seed(0)
    z0, noise, zs = (torch.randn(2, 3, 5, 4, 4, generator=g) for _ in range(3))
    t = torch.tensor([100, 900])
    z_t = L.add_noise(s.alphas_cumprod, z0, noise, t)
    target = L.diffusion_target("v_prediction", s.alphas_cumprod, z0, noise, t)
    kw = dict(z0=z0, z_t=z_t, noise=noise, z_static=zs, timesteps=t, alphas_cumprod=s.alphas_cumprod,
              prediction_type="v_prediction", omega=0.0)
    pred = target + torch.randn(target.shape, generator=g)
    err = pred - target
    frame_mean = sum(err[:, :, f] for f in range(5)) / 5
    deviation = sum(((err[:, :, f] - frame_mean) ** 2).sum() for f in range(5)) / err.numel()
    base = L.total_loss(pred, **kw)["loss"]
    torch.testing.assert_close(L.total_loss(pred, frame_deviation_weight=3.0, **kw)["loss"], base + 3.0 * deviation)
    same_in_every_frame = target + torch.randn(2, 3, 1, 4, 4, generator=g)
    torch.testing.assert_close(L.total_loss(same_in_every_frame, frame_deviation_weight=3.0, **kw)["loss"],
                               L.total_loss(same_in_every_frame, **kw)["loss"])


def test_check_finite_message():
    check_finite(1.0, 3, None)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 4.*checkpoint-3"):
        check_finite(float("nan"), 4, "runs/x/checkpoint-3")


@pytest.mark.parametrize("pt", ["epsilon", "v_prediction"])
def test_min_snr_weights_match_per_timestep_formula(pt):
    # cosine schedule: alpha_bar at t = T-1 is ~0 (SNR ~ 0), where min(SNR, g) / SNR must stay finite
    s = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=pt)
    t = torch.tensor([0, 10, 200, 500, 800, 999])
    w = L.min_snr_weights(5.0, pt, s.alphas_cumprod, t)
    for i, ti in enumerate(t.tolist()):
        a = float(s.alphas_cumprod[ti])
        snr = a / (1 - a)
        expected = (1.0 if snr <= 5.0 else 5.0 / snr) if pt == "epsilon" else min(snr, 5.0) / (snr + 1)
        assert math.isclose(float(w[i]), expected, rel_tol=1e-5, abs_tol=1e-7), (ti, float(w[i]), expected)
    assert L.min_snr_weights(0.0, pt, s.alphas_cumprod, t) is None


def test_weighted_ldm_loss_is_per_sample_weighted_mean():
    pred, target = torch.randn(3, 2, 4, 3, 3), torch.randn(3, 2, 4, 3, 3)
    w = torch.tensor([0.5, 1.0, 2.0])
    expected = sum(w[b] * ((pred[b] - target[b]) ** 2).mean() for b in range(3)) / 3
    torch.testing.assert_close(L.ldm_loss(pred, target, w), expected)
    torch.testing.assert_close(L.ldm_loss(pred, target, torch.ones(3)), L.ldm_loss(pred, target))


def test_foreground_weighted_ldm_loss_against_a_loop():
    """``loss.foreground_weight``: weights 1 + k * foreground per latent cell, rescaled to mean 1 per
    sample, multiply each squared error (the channel axis shares its cell's weight)."""
    g = torch.Generator().manual_seed(0)
    B, C, Fr, h, w = 2, 3, 2, 4, 4
    pred, target = torch.randn(B, C, Fr, h, w, generator=g), torch.randn(B, C, Fr, h, w, generator=g)
    fg = torch.rand(B, Fr, h, w, generator=g)
    fg[1] = 0.0  # no object at all: plain MSE for that sample
    assert L.foreground_weights(fg, 0.0) is None
    ew = L.foreground_weights(fg, 4.0)
    assert ew.shape == (B, 1, Fr, h, w)
    torch.testing.assert_close(ew.flatten(1).mean(1), torch.ones(B))
    want = 0.0
    for b in range(B):
        raw = [[[1 + 4.0 * float(fg[b, f, y, x]) for x in range(w)] for y in range(h)] for f in range(Fr)]
        mean = sum(v for plane in raw for row in plane for v in row) / (Fr * h * w)
        total = 0.0
        for c in range(C):
            for f in range(Fr):
                for y in range(h):
                    for x in range(w):
                        total += raw[f][y][x] / mean * float(pred[b, c, f, y, x] - target[b, c, f, y, x]) ** 2
        want += total / (C * Fr * h * w) / B
    got = L.ldm_loss(pred, target, element_weights=ew)
    assert abs(float(got) - want) < 1e-5 * want
    # sample 1 has no foreground: its weights are all 1
    torch.testing.assert_close(ew[1], torch.ones_like(ew[1]))
    # with per-sample weights as well: each sample's weighted mean times its weight
    sw = torch.tensor([2.0, 0.5])
    per = (ew * (pred - target) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(L.ldm_loss(pred, target, sw, ew), (per * sw).mean())


def test_motion_weights_against_a_loop():
    """``loss.motion_weight``: 1 + k x each cell's distance to the static orbit (over channels), divided by
    the clip's largest, rescaled to mean 1; a clip equal to its static orbit gets weight 1 everywhere."""
    g = torch.Generator().manual_seed(1)
    B, C, Fr, h, w = 2, 4, 3, 2, 2
    z0, zs = torch.randn(B, C, Fr, h, w, generator=g), torch.randn(B, C, Fr, h, w, generator=g)
    zs[1] = z0[1]  # sample 1 does not move
    assert L.motion_weights(z0, zs, 0.0) is None
    with pytest.raises(ValueError, match="same"):
        L.motion_weights(z0, zs[:, :2], 1.0)
    mw = L.motion_weights(z0, zs, 3.0)
    assert mw.shape == (B, 1, Fr, h, w)
    dist = [[[[math.sqrt(sum(float(z0[0, c, f, y, x] - zs[0, c, f, y, x]) ** 2 for c in range(C))) for x in range(w)]
              for y in range(h)] for f in range(Fr)]]
    top = max(v for plane in dist[0] for row in plane for v in row)
    raw = [1 + 3.0 * v / top for plane in dist[0] for row in plane for v in row]
    want = torch.tensor([v / (sum(raw) / len(raw)) for v in raw]).reshape(Fr, h, w)
    torch.testing.assert_close(mw[0, 0], want)
    torch.testing.assert_close(mw[1], torch.ones_like(mw[1]))
    # combined with the foreground weights: their product, rescaled to mean 1 per sample
    fw = L.foreground_weights(torch.rand(B, Fr, h, w, generator=g), 2.0)
    both = L.combine_weights(fw, None, mw)
    prod = fw * mw
    torch.testing.assert_close(both, prod / prod.flatten(1).mean(1).reshape(-1, 1, 1, 1, 1))
    assert L.combine_weights(None, None) is None
    torch.testing.assert_close(L.combine_weights(mw), mw)


def test_uniform_timesteps_are_ddpm_randint():
    a = L.sample_timesteps("uniform", 64, 1000, torch.Generator().manual_seed(3))
    b = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_logit_normal_timesteps_against_the_formula():
    t = L.sample_timesteps("logit_normal", 4096, 1000, torch.Generator().manual_seed(0), logit_mean=1.0, logit_std=1.0)
    g = torch.Generator().manual_seed(0)
    normal = torch.normal(mean=1.0, std=1.0, size=(4096,), generator=g).tolist()
    ref = [min(int(1000 / (1 + math.exp(-x))), 999) for x in normal]
    assert t.dtype == torch.int64
    diff = [abs(a - b) for a, b in zip(t.tolist(), ref)]
    assert max(diff) <= 1 and sum(diff) <= 8  # float32 sigmoid vs float64: a floor may land one step apart
    assert 0 <= int(t.min()) and int(t.max()) <= 999
    # a positive mean moves the draws towards high noise: median sigmoid(1) = 0.73 of T
    assert abs(float(t.float().median()) - 731) < 25
    centred = L.sample_timesteps("logit_normal", 4096, 1000, torch.Generator().manual_seed(0), logit_mean=0.0)
    assert float(centred.float().mean()) < float(t.float().mean())


def test_mode_timesteps_stay_in_range_and_unknown_scheme_fails():
    t = L.sample_timesteps("mode", 2048, 1000, torch.Generator().manual_seed(0), mode_scale=1.29)
    assert 0 <= int(t.min()) and int(t.max()) <= 999 and len(set(t.tolist())) > 500
    with pytest.raises(ValueError, match="timestep sampling"):
        L.sample_timesteps("cosine", 4, 1000)


def test_motion_jitter_is_multiplicative_and_keeps_dropped_and_static_values():
    from diffusion4d.train.losses import jitter_motion

    m = torch.tensor([0.0, float("nan"), 0.01, 0.04] * 500)
    assert jitter_motion(m, 0.0) is m  # off: untouched, nothing drawn
    out = jitter_motion(m, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(out[0::4], m[0::4]) and torch.isnan(out[1::4]).all()
    for k, value in ((2, 0.01), (3, 0.04)):
        log_ratio = (out[k::4] / value).log()
        assert abs(float(log_ratio.mean())) < 0.05 and abs(float(log_ratio.std()) - 0.3) < 0.03
    again = jitter_motion(m, 0.3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again, equal_nan=True)


def test_motion_jitter_must_be_non_negative():
    import pytest

    from diffusion4d.config import load_config
    from diffusion4d.train.train_config import TrainConfig

    with pytest.raises(ValueError, match="motion_jitter must be >= 0"):
        load_config(TrainConfig, None, ["data.motion_jitter=-0.1"]).validate()
