"""Fine-tuning the 4D-aware video diffusion model (``accelerate launch train/finetune.py``).

Modules: :mod:`train.train_config` (typed config), :mod:`train.orbit_dataset` (curated orbits
and the latent cache), :mod:`train.losses` (diffusion math), :mod:`train.checkpointing`
(atomic checkpoints, rotation, resume), :mod:`train.validation` (DDIM sampling to mp4),
:mod:`train.trainer` (the loop; ``main``).
"""
