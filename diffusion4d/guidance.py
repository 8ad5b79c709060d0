"""3D-aware classifier-free guidance (docs/method.md Eq. 3) as small pure functions.

.. math::

    \\hat\\epsilon = \\epsilon(z_t, y, m, t)
        + w_1 [\\epsilon(z_t, y, m, t) - \\epsilon(z_t, t)]
        + w_2 [\\epsilon(z_t, y, m, t) - \\bar\\epsilon(z_t, y, t)]

with three *branches* of the denoiser:

* ``cond``: every condition the user gave (text y, motion magnitude m, image, static orbit);
* ``uncond``: conditions dropped, as in training-time condition dropout: the empty-prompt text
  embedding, a null motion magnitude (NaN -> the learned null embedding), zero image / static
  latents, zero image tokens;
* ``prior``: a frozen static (multi-view) 3D prior conditioned on y (and the cameras) only:
  the network of training stage 1, stored with the stage-2 checkpoint (the paper: the
  pretrained VideoMV), or, as a variant, the same network with m = 0 and every other
  condition dropped.

The functions here know nothing about networks: the pipeline evaluates the branches (batched
into one forward pass where it can, see :func:`split_branches`) and combines them with
:func:`guided_prediction`. Guidance is linear, so it applies unchanged to epsilon, v or x0
model outputs (the scheduler interprets the combined output).
"""

from __future__ import annotations

from typing import List, Literal, Optional, Sequence, Tuple

import torch

Branch = Literal["cond", "uncond", "prior"]
PriorKind = Literal["self", "separate"]
PRIOR_KINDS: Tuple[str, ...] = ("self", "separate")


def active_branches(guidance_scale: float, prior_guidance_scale: float) -> List[str]:
    """The branches Eq. 3 needs for weights ``w1 = guidance_scale``, ``w2 = prior_guidance_scale``.

    ``cond`` always; ``uncond`` only when ``w1 != 0``; ``prior`` only when ``w2 != 0``.
    """
    branches = ["cond"]
    if guidance_scale != 0.0:
        branches.append("uncond")
    if prior_guidance_scale != 0.0:
        branches.append("prior")
    return branches


def guided_prediction(
    pred_cond: torch.Tensor,
    pred_uncond: Optional[torch.Tensor] = None,
    pred_prior: Optional[torch.Tensor] = None,
    guidance_scale: float = 7.0,
    prior_guidance_scale: float = 0.5,
) -> torch.Tensor:
    """Combine the branch predictions as Eq. 3.

    Args:
        pred_cond: ``eps(z_t, y, m, t)`` ``[B, C, F, H, W]`` (any shape).
        pred_uncond: ``eps(z_t, t)``, same shape; required when ``guidance_scale != 0``.
        pred_prior: ``epsbar(z_t, y, t)``, same shape; required when ``prior_guidance_scale != 0``.
        guidance_scale: ``w1``.
        prior_guidance_scale: ``w2``.

    Returns:
        ``eps_c + w1 (eps_c - eps_uncond) + w2 (eps_c - eps_prior)`` (terms with a zero weight
        are skipped, so their prediction may be None).
    """
    out = pred_cond
    if guidance_scale != 0.0:
        if pred_uncond is None:
            raise ValueError("guidance_scale != 0 needs the unconditional prediction")
        out = out + guidance_scale * (pred_cond - pred_uncond)
    if prior_guidance_scale != 0.0:
        if pred_prior is None:
            raise ValueError("prior_guidance_scale != 0 needs the prior prediction")
        out = out + prior_guidance_scale * (pred_cond - pred_prior)
    return out


def null_motion(batch: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """``[B]`` of NaN: the dropped motion-magnitude condition (the UNet's learned null embedding)."""
    return torch.full((batch,), float("nan"), device=device)


def motion_tensor(
    motion_magnitude: Optional[Sequence[float] | float | torch.Tensor], batch: int, device: Optional[torch.device] = None
) -> torch.Tensor:
    """The user's motion magnitude as ``[B]`` float32 (None -> NaN, i.e. the null embedding)."""
    if motion_magnitude is None:
        return null_motion(batch, device)
    m = torch.as_tensor(motion_magnitude, dtype=torch.float32, device=device).reshape(-1)
    if m.numel() == 1:
        m = m.expand(batch).clone()
    if m.numel() != batch:
        raise ValueError(f"motion_magnitude has {m.numel()} values for a batch of {batch}")
    return m


def split_branches(pred: torch.Tensor, branches: Sequence[str]) -> dict:
    """Split a batched prediction ``[len(branches) * B, ...]`` back into ``{branch: [B, ...]}``
    (the inverse of concatenating the branches' inputs along the batch axis, in that order)."""
    chunks = pred.chunk(len(branches), dim=0)
    return dict(zip(branches, chunks))


__all__ = [
    "PRIOR_KINDS",
    "active_branches",
    "guided_prediction",
    "motion_tensor",
    "null_motion",
    "split_branches",
]
