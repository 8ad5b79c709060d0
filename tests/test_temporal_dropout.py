"""``model.temporal_dropout``: the dropout of the ModelScope temporal convolutions while training."""

import pytest
import torch

from diffusion4d.config import load_config
from diffusion4d.train.train_config import TrainConfig


def _temporal_dropouts(*overrides):
    from diffusers.models.resnet import TemporalConvLayer

    from diffusion4d.train.model_setup import build_components

    cfg = load_config(TrainConfig, None, ["model.base=tiny", "model.text_encoder=minilm", "data.resolution=16", "data.num_frames=2", *overrides])
    unet = build_components(cfg.model, cfg.data).unet
    layers = [m for m in unet.modules() if isinstance(m, TemporalConvLayer)]
    return unet, [d.p for layer in layers for d in layer.modules() if isinstance(d, torch.nn.Dropout)]


def test_null_keeps_the_architectures_dropout_and_a_value_replaces_it():
    _, default = _temporal_dropouts()
    unet, off = _temporal_dropouts("model.temporal_dropout=0")
    assert default and set(default) == {0.1}
    assert len(off) == len(default) and set(off) == {0.0}
    # no other dropout changed (attention and feed-forward dropouts are the architecture's)
    others = {m.p for m in unet.modules() if isinstance(m, torch.nn.Dropout)} - {0.0}
    assert others == set()


def test_without_dropout_training_mode_is_deterministic():
    unet, _ = _temporal_dropouts("model.temporal_dropout=0")
    unet.train()
    torch.manual_seed(0)
    z = torch.randn(1, unet.config.in_channels, 2, 16, 16)
    text = torch.randn(1, 4, unet.config.cross_attention_dim)
    t = torch.tensor([500])
    a = unet(z, t, text, motion_magnitude=torch.tensor([0.01])).sample
    b = unet(z, t, text, motion_magnitude=torch.tensor([0.01])).sample
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_a_dropout_must_be_a_probability_below_one(value):
    with pytest.raises(ValueError, match="temporal_dropout must be in"):
        load_config(TrainConfig, None, [f"model.temporal_dropout={value}"]).validate()
