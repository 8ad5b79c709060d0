"""Diffusion losses as small pure functions (docs/method.md Eq. 2).

Shapes: latents ``[B, C, F, h, w]``; timesteps ``[B]`` (int, index into the scheduler's
``alphas_cumprod``).
"""

from __future__ import annotations

from typing import Dict, Literal, Optional

import torch
import torch.nn.functional as F

from diffusion4d.motion import latent_motion_magnitude

PredictionType = Literal["epsilon", "v_prediction"]


def _alpha_bar(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    a = alphas_cumprod.to(device=like.device)[timesteps.to(like.device).long()].to(like.dtype)
    return a.reshape(-1, *([1] * (like.dim() - 1)))


def add_noise(alphas_cumprod: torch.Tensor, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """q(z_t | z0): ``sqrt(a) z0 + sqrt(1 - a) noise``."""
    a = _alpha_bar(alphas_cumprod, timesteps, z0)
    return a.sqrt() * z0 + (1 - a).sqrt() * noise


def diffusion_target(
    prediction_type: PredictionType, alphas_cumprod: torch.Tensor, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the network predicts: ``noise`` (epsilon) or ``v = sqrt(a) noise - sqrt(1 - a) z0``."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        a = _alpha_bar(alphas_cumprod, timesteps, z0)
        return a.sqrt() * noise - (1 - a).sqrt() * z0
    raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")


def predicted_clean_sample(
    prediction_type: PredictionType, alphas_cumprod: torch.Tensor, z_t: torch.Tensor, prediction: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The clean-sample estimate ``zhat0`` from the network output."""
    a = _alpha_bar(alphas_cumprod, timesteps, z_t)
    if prediction_type == "epsilon":
        return (z_t - (1 - a).sqrt() * prediction) / a.sqrt()
    if prediction_type == "v_prediction":
        return a.sqrt() * z_t - (1 - a).sqrt() * prediction
    raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")


def ldm_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    element_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Noise-prediction MSE in float32: the mean over every element, or with per-sample
    ``weights`` ``[B]`` the mean over the batch of ``w_b * mean_b((pred - target)^2)``.
    ``element_weights`` (broadcastable to the prediction, e.g. ``[B, 1, F, h, w]`` from
    :func:`foreground_weights`) multiply each squared error before the mean."""
    if weights is None and element_weights is None:
        return F.mse_loss(prediction.float(), target.float())
    sq = (prediction.float() - target.float()).pow(2)
    if element_weights is not None:
        sq = sq * element_weights.to(sq)
    per_sample = sq.flatten(1).mean(1)
    if weights is None:
        return per_sample.mean()
    return (per_sample * weights.to(per_sample)).mean()


def foreground_weights(foreground: torch.Tensor, weight: float) -> Optional[torch.Tensor]:
    """Per-element L_ldm weights ``[B, 1, F, h, w]`` from the foreground fraction of each latent
    cell ``foreground`` ``[B, F, h, w]`` in [0, 1]: ``1 + weight * foreground``, rescaled to mean 1
    per sample so the loss keeps its scale and only moves emphasis from the white background
    to the object; None when ``weight <= 0`` (plain MSE)."""
    if weight <= 0:
        return None
    w = 1.0 + weight * foreground.float().clamp(0, 1)
    w = w / w.flatten(1).mean(1).reshape(-1, *([1] * (w.dim() - 1)))
    return w[:, None]


def motion_weights(z0: torch.Tensor, z_static: torch.Tensor, weight: float) -> Optional[torch.Tensor]:
    """Per-element L_ldm weights ``[B, 1, F, h, w]`` from where the clip moves: each latent cell's
    distance to the static orbit's ``||z0 - z_static||`` (over the channels of ``[B, C, F, h, w]``),
    divided by its largest value in the clip so that it lies in [0, 1], gives ``1 + weight * distance``,
    rescaled to mean 1 per sample. The cells where the object leaves its rest pose, the only ones
    where the requested motion magnitude changes the target, then weigh more. A clip that does not
    move (distance 0 everywhere) gets weight 1 everywhere; None when ``weight <= 0``."""
    if weight <= 0:
        return None
    if z0.shape != z_static.shape or z0.dim() != 5:
        raise ValueError(f"z0 and z_static must be the same [B, C, F, h, w], got {tuple(z0.shape)} and {tuple(z_static.shape)}")
    dist = (z0.float() - z_static.float()).pow(2).sum(1).sqrt()  # [B, F, h, w]
    dist = dist / dist.flatten(1).amax(1).clamp_min(1e-12).reshape(-1, 1, 1, 1)
    w = 1.0 + weight * dist
    w = w / w.flatten(1).mean(1).reshape(-1, 1, 1, 1)
    return w[:, None]


def combine_weights(*weights: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The product of the given per-element weights (None entries skipped), rescaled to mean 1 per
    sample; None when every entry is None."""
    given = [w for w in weights if w is not None]
    if not given:
        return None
    w = given[0]
    for other in given[1:]:
        w = w * other
    return w / w.flatten(1).mean(1).reshape(-1, *([1] * (w.dim() - 1)))


def min_snr_weights(
    gamma: float, prediction_type: PredictionType, alphas_cumprod: torch.Tensor, timesteps: torch.Tensor
) -> Optional[torch.Tensor]:
    """Min-SNR-gamma loss weights ``[B]`` (Hang et al., ICCV 2023), or None when ``gamma <= 0``.

    ``SNR_t = alpha_bar_t / (1 - alpha_bar_t)``; the x0-space weight ``min(SNR_t, gamma)`` becomes
    ``min(SNR_t, gamma) / SNR_t`` for epsilon targets and ``min(SNR_t, gamma) / (SNR_t + 1)`` for v
    targets. It stops the low-noise timesteps from dominating the gradient (reported to speed up
    convergence severalfold; on the tiny CPU preset it weakened text conditioning, so that preset
    leaves it off: docs/training.md).
    """
    if gamma <= 0:
        return None
    a = alphas_cumprod.to(timesteps.device)[timesteps.long()].double()
    snr = a / (1 - a)
    if prediction_type == "epsilon":
        w = torch.where(snr > gamma, gamma / snr, torch.ones_like(snr))  # min(SNR, gamma) / SNR, finite at SNR = 0
    elif prediction_type == "v_prediction":
        w = snr.clamp(max=gamma) / (snr + 1)
    else:
        raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
    return w.float()


TimestepSampling = Literal["uniform", "logit_normal", "mode"]


def sample_timesteps(
    scheme: TimestepSampling, batch: int, num_train_timesteps: int, generator: Optional[torch.Generator] = None,
    logit_mean: float = 0.0, logit_std: float = 1.0, mode_scale: float = 1.29,
) -> torch.Tensor:
    """Training timesteps ``[B]`` (int64 in ``[0, T)``) drawn from ``scheme``.

    ``uniform`` is DDPM's ``randint(0, T)``. The other two draw ``u`` in (0, 1) with diffusers'
    ``compute_density_for_timestep_sampling`` (the SD3 training densities: ``logit_normal`` is
    ``sigmoid(N(logit_mean, logit_std))``, ``mode`` has a hump set by ``mode_scale``) and take
    ``t = floor(u T)``. A positive ``logit_mean`` spends more steps at high noise, where only the
    caption (not the noisy input) tells the model what the object is.
    """
    if scheme == "uniform":
        return torch.randint(0, num_train_timesteps, (batch,), generator=generator)
    if scheme not in ("logit_normal", "mode"):
        raise ValueError(f"timestep sampling must be 'uniform', 'logit_normal' or 'mode', got {scheme!r}")
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(scheme, batch, logit_mean=logit_mean, logit_std=logit_std,
                                              mode_scale=mode_scale, generator=generator)  # fmt: skip
    return (u * num_train_timesteps).long().clamp(0, num_train_timesteps - 1)


CONDITIONS = ("text", "image", "static", "motion")


def condition_dropout(batch: int, probabilities, generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """Which conditions each sample drops (classifier-free guidance training) -> ``{name: bool [B]}``.

    ``probabilities`` has a float per name of :data:`CONDITIONS` plus ``all``: with probability
    ``all`` a sample drops every condition together (that is the branch ``eps(z_t, t)`` of Eq. 3,
    which sampling weights by w1 = 7, so it must be trained often: the usual 10%); otherwise each
    condition is dropped on its own draw. So P(every condition dropped) =
    ``all + (1 - all) * prod_k p_k`` and P(condition k dropped) = ``all + (1 - all) * p_k``.
    Cameras are never dropped: every branch of Eq. 3 sees the orbit's cameras.
    """
    p_all = float(getattr(probabilities, "all"))
    every = torch.rand(batch, generator=generator) < p_all
    return {k: (torch.rand(batch, generator=generator) < float(getattr(probabilities, k))) | every for k in CONDITIONS}


def jitter_motion(motion: torch.Tensor, sigma: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Log-normal multiplicative noise on the motion condition: ``m x exp(sigma x N(0, 1))`` per sample.

    ``motion`` ``[B]`` (NaN = dropped, 0 = static: both stay as they are). ``sigma = 0`` returns the
    input unchanged and draws nothing from ``generator``.
    """
    if sigma == 0.0:
        return motion
    factor = torch.exp(sigma * torch.randn(motion.shape, generator=generator)).to(motion.device, motion.dtype)
    return motion * factor


def motion_reconstruction_loss(
    z0: torch.Tensor,
    zhat0: torch.Tensor,
    z_static: torch.Tensor,
    reduction: Literal["mean", "sum"] = "mean",
    weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """L_mr = mean over the batch of ``w_b (m(z0) - m(zhat0))^2``, ``m(z) = 1/T ||z - zbar0||^2`` (Eq. 2).

    ``weights`` ``[B]`` (default 1) see :func:`mr_weights`.
    """
    m_true = latent_motion_magnitude(z0, z_static, reduction=reduction)
    m_pred = latent_motion_magnitude(zhat0, z_static, reduction=reduction)
    per_sample = (m_true - m_pred).pow(2)
    if weights is not None:
        per_sample = per_sample * weights.to(per_sample.dtype)
    return per_sample.mean()


def mr_weights(weighting: Literal["none", "alpha_bar_sq"], alphas_cumprod: torch.Tensor, timesteps: torch.Tensor) -> Optional[torch.Tensor]:
    """Per-sample weights of L_mr. ``zhat0``'s error grows like ``1/sqrt(alpha_bar_t)``, so ``m(zhat0)``'s
    like ``1/alpha_bar_t`` and its square like ``1/alpha_bar_t^2``: ``"alpha_bar_sq"`` weights by
    ``alpha_bar_t^2`` to keep L_mr bounded at high noise levels (measured: unweighted L_mr reaches
    1e3-1e4 at t near T on the tiny preset); ``"none"`` is Eq. 2 literally."""
    if weighting == "none":
        return None
    if weighting == "alpha_bar_sq":
        return alphas_cumprod.to(timesteps.device)[timesteps.long()].float().pow(2)
    raise ValueError(f"weighting must be 'none' or 'alpha_bar_sq', got {weighting!r}")


def total_loss(
    prediction: torch.Tensor,
    *,
    z0: torch.Tensor,
    z_t: torch.Tensor,
    noise: torch.Tensor,
    z_static: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: PredictionType,
    omega: float,
    mr_reduction: Literal["mean", "sum"] = "mean",
    mr_weighting: Literal["none", "alpha_bar_sq"] = "alpha_bar_sq",
    snr_gamma: float = 0.0,
    element_weights: Optional[torch.Tensor] = None,
    frame_deviation_weight: float = 0.0,
) -> Dict[str, torch.Tensor]:
    """``{"loss": L_ldm + omega * L_mr, "ldm": L_ldm, "mr": L_mr}``; ``snr_gamma > 0`` weights
    L_ldm per sample with :func:`min_snr_weights`, ``element_weights`` per element
    (:func:`foreground_weights`); ``frame_deviation_weight = k`` adds to L_ldm ``k`` times the mean
    square of the error's deviation from its mean over the frames (axis 2 of ``[B, C, F, H, W]``)."""
    target = diffusion_target(prediction_type, alphas_cumprod, z0, noise, timesteps)
    l_ldm = ldm_loss(prediction, target, min_snr_weights(snr_gamma, prediction_type, alphas_cumprod, timesteps), element_weights)
    if frame_deviation_weight:
        err = prediction.float() - target.float()  # [B, C, F, H, W]
        l_ldm = l_ldm + frame_deviation_weight * (err - err.mean(dim=2, keepdim=True)).pow(2).mean()
    if omega:
        zhat0 = predicted_clean_sample(prediction_type, alphas_cumprod, z_t.float(), prediction.float(), timesteps)
        weights = mr_weights(mr_weighting, alphas_cumprod, timesteps)
        l_mr = motion_reconstruction_loss(z0.float(), zhat0, z_static.float(), mr_reduction, weights)
    else:
        l_mr = torch.zeros((), device=prediction.device)
    return {"loss": l_ldm + omega * l_mr, "ldm": l_ldm.detach(), "mr": l_mr.detach()}
