"""Diffusion4D: 4D generation with video diffusion models.

The core library: camera conventions and orbit trajectories (:mod:`diffusion4d.cameras`),
the on-disk clip and manifest formats (:mod:`diffusion4d.io`), motion magnitude
(:mod:`diffusion4d.motion`), the SSIM motion rule (:mod:`diffusion4d.ssim_rule`), typed
configs (:mod:`diffusion4d.config`), models and pipelines. The core imports nothing from the
stage packages (``data_curation``, ``train``, ``eval``, ``recon``).
"""

__version__ = "0.1.0"


_LAZY = {
    "UNet4DConditionModel": "diffusion4d.models",
    "Diffusion4DPipeline": "diffusion4d.pipelines",
    # diffusers' loader finds a component's load method by looking up its base classes
    # (``ModelMixin``...) in the component's library, here ``diffusion4d``
    "ModelMixin": "diffusers",
}


def __getattr__(name: str):
    """Lazy exports (``diffusion4d.UNet4DConditionModel``...) so ``import diffusion4d`` stays torch-free
    and diffusers can resolve components saved with library ``"diffusion4d"``."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'diffusion4d' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
