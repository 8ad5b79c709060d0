"""Diffusion4D: 4D generation with video diffusion models.

The core library: camera conventions and orbit trajectories (:mod:`diffusion4d.cameras`),
the on-disk clip and manifest formats (:mod:`diffusion4d.io`), motion magnitude
(:mod:`diffusion4d.motion`), the SSIM motion rule (:mod:`diffusion4d.ssim_rule`), typed
configs (:mod:`diffusion4d.config`), models and pipelines. The core imports nothing from the
stage packages (``data_curation``, ``train``, ``eval``, ``recon``).
"""

__version__ = "0.1.0"
