"""Inference pipelines: :class:`Diffusion4DPipeline` (text / image / static 3D -> orbital video).

Importing this package also makes ``diffusers.DiffusionPipeline.from_pretrained(folder)`` work
on a Diffusion4D checkpoint: diffusers resolves a string ``_class_name`` in
``model_index.json`` with ``getattr(diffusers, name)``, so the class is registered on the
``diffusers`` module namespace here (``import diffusion4d.pipelines`` or
``from diffusion4d import Diffusion4DPipeline`` first). The UNet component itself is found
through library ``"diffusion4d"`` (``diffusion4d.UNet4DConditionModel``).
"""

import diffusers as _diffusers

from diffusion4d.pipelines.pipeline_diffusion4d import BranchInputs, ConditionError, Diffusion4DPipeline
from diffusion4d.pipelines.pipeline_output import Diffusion4DPipelineOutput
from diffusion4d.pipelines.schedulers import DEFAULT_STEPS, SCHEDULER_NAMES, make_scheduler, scheduler_name


def register_with_diffusers() -> None:
    """Expose :class:`Diffusion4DPipeline` as ``diffusers.Diffusion4DPipeline`` (idempotent)."""
    # diffusers' lazy module answers attribute look-ups from ``_objects`` first
    objects = getattr(_diffusers, "_objects", None)
    if isinstance(objects, dict):
        objects.setdefault("Diffusion4DPipeline", Diffusion4DPipeline)
    if getattr(_diffusers, "Diffusion4DPipeline", None) is not Diffusion4DPipeline:
        setattr(_diffusers, "Diffusion4DPipeline", Diffusion4DPipeline)


register_with_diffusers()

__all__ = [
    "BranchInputs",
    "ConditionError",
    "DEFAULT_STEPS",
    "Diffusion4DPipeline",
    "Diffusion4DPipelineOutput",
    "SCHEDULER_NAMES",
    "make_scheduler",
    "register_with_diffusers",
    "scheduler_name",
]
