"""Checkpoint round trips: save_pretrained/from_pretrained, DiffusionPipeline.from_pretrained,
and the trainer's folder (diffusion4d.models.checkpoint.save_pipeline_folder) as a pipeline."""

import json

import numpy as np
import pytest
import torch

from diffusion4d.pipelines import Diffusion4DPipeline


@pytest.fixture(scope="module")
def pipe():
    from diffusion4d.pipelines.tiny import tiny_pipeline

    return tiny_pipeline(static_conditioning=True)


def _sample(p):
    static = np.linspace(0, 1, 4 * 16 * 16 * 3, dtype=np.float32).reshape(4, 16, 16, 3)
    return p("a cube", static_orbit=static, motion_magnitude=0.02, num_inference_steps=2, generator=torch.Generator().manual_seed(3)).frames


def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "ckpt")
    index = json.loads((tmp_path / "ckpt" / "model_index.json").read_text())
    assert index["_class_name"] == "Diffusion4DPipeline"
    assert index["unet"] == ["diffusion4d", "UNet4DConditionModel"]  # contract 3
    assert index["vae"] == [None, None] and index["prior_unet"] == [None, None]
    assert (tmp_path / "ckpt" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = Diffusion4DPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded.vae is None and loaded.unet.config.static_conditioning
    np.testing.assert_array_equal(_sample(pipe), _sample(loaded))

    from diffusers import DiffusionPipeline

    generic = DiffusionPipeline.from_pretrained(str(tmp_path / "ckpt"))
    assert type(generic) is Diffusion4DPipeline
    np.testing.assert_array_equal(_sample(pipe), _sample(generic))


def test_trainer_checkpoint_loads_as_pipeline(pipe, tmp_path):
    from diffusers import DDPMScheduler

    from diffusion4d.models.checkpoint import save_pipeline_folder

    training_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # what the trainer saves
    folder = save_pipeline_folder(
        tmp_path / "trained",
        unet=pipe.unet,
        scheduler=training_scheduler,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        training_config={"preset": "tiny"},
    )
    loaded = Diffusion4DPipeline.from_pretrained(folder)
    assert type(loaded.scheduler).__name__ == "DDIMScheduler"  # sampled with DDIM, same schedule
    np.testing.assert_array_equal(_sample(pipe), _sample(loaded))
