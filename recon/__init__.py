"""4D Gaussian reconstruction from orbital videos (coarse static fit + deformation field).

Entry point: :func:`reconstruct` (``from recon import reconstruct``); command line:
``diffusion4d reconstruct``. Rasterizer backends: :func:`diffusion4d.recon.rasterize.rasterize`.
"""

from __future__ import annotations

from typing import Any


def reconstruct(*args: Any, **kwargs: Any) -> dict:
    """See :func:`diffusion4d.recon.pipeline.reconstruct` (imported lazily: torch loads only when called)."""
    from diffusion4d.recon.pipeline import reconstruct as _reconstruct

    return _reconstruct(*args, **kwargs)


__all__ = ["reconstruct"]
