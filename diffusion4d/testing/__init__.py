"""Test and benchmark helpers, in one place: random-weight checkpoints in the real hub layouts
(:mod:`~diffusion4d.testing.modelscope_layout`) and synthetic curated datasets
(:mod:`~diffusion4d.testing.orbits`).

Names are imported lazily, so ``python -m diffusion4d.testing.modelscope_layout`` runs the module once.
"""

_EXPORTS = (
    "MODELSCOPE_SCHEDULER_CONFIG",
    "MODELSCOPE_TEXT_ENCODER_CONFIG",
    "MODELSCOPE_UNET_CONFIG",
    "MODELSCOPE_VAE_CONFIG",
    "clip_tokenizer",
    "write_modelscope_layout",
)

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        from diffusion4d.testing import modelscope_layout

        return getattr(modelscope_layout, name)
    raise AttributeError(f"module 'diffusion4d.testing' has no attribute {name!r}")
