"""``model.motion_scale``: the factor on m before the motion embedding's sinusoidal features."""

import pytest
import torch

from diffusion4d.config import load_config
from diffusion4d.train.train_config import TrainConfig


def _components(*overrides):
    from diffusion4d.train.model_setup import build_components

    cfg = load_config(TrainConfig, None, ["model.base=tiny", "model.text_encoder=minilm", "data.resolution=16", "data.num_frames=2", *overrides])
    return build_components(cfg.model, cfg.data)


def test_the_trainer_builds_the_motion_embedding_with_the_configured_scale():
    default = _components().unet
    scaled = _components("model.motion_scale=100").unet
    assert default.config.motion_scale == 1000.0 and default.motion_embedding.scale == 1000.0
    assert scaled.config.motion_scale == 100.0 and scaled.motion_embedding.scale == 100.0


def test_a_smaller_scale_keeps_the_features_of_nearby_magnitudes_close():
    """At scale 1000 the fastest features of m = 0.02 and 0.03 are unrelated (10 radians apart); at 100 they are
    a radian apart, so an m between two trained ones gets features between theirs."""
    from diffusers.models.embeddings import get_timestep_embedding

    m = torch.tensor([0.02, 0.025, 0.03])
    for scale, expect_between in ((100.0, True), (1000.0, False)):
        f = get_timestep_embedding(m * scale, 256, flip_sin_to_cos=True, downscale_freq_shift=0)
        mid, ends = f[1], (f[0] + f[2]) / 2
        between = float((mid - ends).norm() / (f[0] - f[2]).norm()) < 0.5
        assert between == expect_between


def test_a_scale_must_be_positive():
    with pytest.raises(ValueError, match="motion_scale must be > 0"):
        load_config(TrainConfig, None, ["model.motion_scale=0"]).validate()
