"""Sampling schedulers the pipeline offers, built from a checkpoint's scheduler config.

* ``ddim``: :class:`diffusers.DDIMScheduler`, the paper's sampler (50 steps);
* ``dpm``: :class:`diffusers.DPMSolverMultistepScheduler` with ``algorithm_type="dpmsolver++"``
  (second order), which reaches similar quality in about 20 steps.

The training noise schedule (``num_train_timesteps``, betas, ``prediction_type`` epsilon or
v_prediction, ...) is carried over from the checkpoint's config, so either sampler matches the
model it samples from.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

SCHEDULER_NAMES: Tuple[str, ...] = ("ddim", "dpm")
#: the number of steps each sampler is typically run with (paper: DDIM 50)
DEFAULT_STEPS: Dict[str, int] = {"ddim": 50, "dpm": 20}

# config keys of the training noise schedule that both samplers understand
_SHARED_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "prediction_type",
    "timestep_spacing",
    "steps_offset",
    "rescale_betas_zero_snr",
)


def make_scheduler(name: str, config: Mapping[str, Any]):
    """A fresh sampler ``name`` (``ddim`` | ``dpm``) for the noise schedule in ``config``.

    Args:
        name: one of :data:`SCHEDULER_NAMES`.
        config: a scheduler config (``pipe.scheduler.config`` or a ``scheduler_config.json`` dict)
            of any diffusers scheduler trained with the same noise schedule.

    Returns:
        A ``DDIMScheduler`` or a ``DPMSolverMultistepScheduler`` (dpmsolver++, order 2).
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if name not in SCHEDULER_NAMES:
        raise ValueError(f"unknown scheduler {name!r}; valid: {', '.join(SCHEDULER_NAMES)}")
    shared = {k: config[k] for k in _SHARED_KEYS if k in config and config[k] is not None}
    if name == "ddim":
        extra = {k: config[k] for k in ("clip_sample", "clip_sample_range", "set_alpha_to_one") if k in config}
        extra.setdefault("clip_sample", False)  # DDIM's own default (True) would clip VAE latents
        return DDIMScheduler(**shared, **extra)
    if shared.get("prediction_type") == "sample":
        raise ValueError("DPM-Solver++ here supports epsilon and v_prediction models; use ddim for sample prediction")
    return DPMSolverMultistepScheduler(**shared, algorithm_type="dpmsolver++", solver_order=2)


def scheduler_name(scheduler) -> str:
    """``ddim`` / ``dpm`` for a scheduler built by :func:`make_scheduler` (else its class name)."""
    cls = type(scheduler).__name__
    return {"DDIMScheduler": "ddim", "DPMSolverMultistepScheduler": "dpm"}.get(cls, cls)


__all__ = ["DEFAULT_STEPS", "SCHEDULER_NAMES", "make_scheduler", "scheduler_name"]
