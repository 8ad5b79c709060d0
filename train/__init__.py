"""Fine-tuning the 4D-aware video diffusion model (``accelerate launch train/finetune.py``).

Modules: :mod:`diffusion4d.train.train_config` (typed config), :mod:`diffusion4d.train.orbit_dataset` (curated orbits
and the latent cache), :mod:`diffusion4d.train.losses` (diffusion math), :mod:`diffusion4d.train.checkpointing`
(atomic checkpoints, rotation, resume), :mod:`diffusion4d.train.validation` (DDIM sampling to mp4),
:mod:`diffusion4d.train.trainer` (the loop; ``main``).
"""
