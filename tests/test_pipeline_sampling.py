"""Diffusion4DPipeline end to end with tiny random components: input kinds, cameras, schedulers."""

import numpy as np
import pytest
import torch

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.pipelines import ConditionError, make_scheduler, scheduler_name


@pytest.fixture(scope="module")
def pipe():
    from diffusion4d.pipelines.tiny import tiny_pipeline

    return tiny_pipeline(static_conditioning=True, image_conditioning=True)


@pytest.fixture(scope="module")
def text_pipe():
    from diffusion4d.pipelines.tiny import tiny_pipeline

    return tiny_pipeline()


def _run(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return pipe(**kwargs)


def test_text_to_4d_shapes_cameras_and_determinism(text_pipe):
    calls = []
    handle = text_pipe.unet.register_forward_pre_hook(lambda m, a, kw: calls.append(kw), with_kwargs=True)
    try:
        out = _run(text_pipe, prompt="a spinning top", motion_magnitude=0.05)
    finally:
        handle.remove()
    assert out.frames.shape == (1, 4, 16, 16, 3) and out.frames.dtype == np.float32
    assert 0.0 <= out.frames.min() and out.frames.max() <= 1.0
    expected = orbit_trajectory("dynamic", 4, width=16, height=16)
    assert out.cameras.mode == "dynamic" and len(out.cameras) == 4
    np.testing.assert_allclose(out.cameras.c2w, expected.c2w)
    np.testing.assert_allclose(out.cameras.times, [0, 1 / 3, 2 / 3, 1])
    # every forward gets the orbit's cameras, frame i = camera i
    assert len(calls) == 2
    torch.testing.assert_close(calls[0]["camera_c2w"][0], torch.as_tensor(expected.c2w, dtype=torch.float32))
    again = _run(text_pipe, prompt="a spinning top", motion_magnitude=0.05)
    np.testing.assert_array_equal(out.frames, again.frames)
    assert set(out.timings) >= {"encode", "denoise", "decode", "steps"} and out.timings["steps"] == 2


def test_motion_magnitude_and_prompt_change_the_video(text_pipe):
    a = _run(text_pipe, prompt="a spinning top", motion_magnitude=0.0).frames
    b = _run(text_pipe, prompt="a spinning top", motion_magnitude=0.1).frames
    c = _run(text_pipe, prompt="a bouncing ball", motion_magnitude=0.0).frames
    assert np.abs(a - b).max() > 1e-4 and np.abs(a - c).max() > 1e-4


def test_image_to_4d(pipe):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[6:18, 8:16] = (200, 30, 30, 255)
    out = _run(pipe, image=rgba, output_type="pt")
    assert out.frames.shape == (1, 4, 3, 16, 16)
    other = _run(pipe, image=np.full((24, 24, 3), 255, np.uint8), output_type="pt")
    assert (out.frames - other.frames).abs().max() > 1e-4  # the image conditions the video


def test_static_3d_to_4d_and_batch(pipe):
    static = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 4), dtype=np.uint8)
    out = _run(pipe, prompt=["a", "b"], static_orbit=static, output_type="pil")
    assert len(out.frames) == 2 and len(out.frames[0]) == 4 and out.frames[0][0].size == (16, 16)
    with pytest.raises(ConditionError, match="frames"):
        _run(pipe, static_orbit=static, num_frames=6)


def test_conditions_the_model_was_not_trained_for(text_pipe):
    with pytest.raises(ConditionError, match="image conditioning"):
        _run(text_pipe, prompt="x", image=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ConditionError, match="static-3D"):
        _run(text_pipe, prompt="x", static_orbit=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(ConditionError, match="prior_unet"):
        _run(text_pipe, prompt="x", prior="separate")
    with pytest.raises(ConditionError, match="prompt, an image"):
        _run(text_pipe)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_scheduler_choice(text_pipe, prediction_type):
    base = make_scheduler("ddim", {**text_pipe.scheduler.config, "prediction_type": prediction_type})
    dpm = make_scheduler("dpm", base.config)
    assert scheduler_name(base) == "ddim" and scheduler_name(dpm) == "dpm"
    assert dpm.config.algorithm_type == "dpmsolver++" and dpm.config.prediction_type == prediction_type
    assert base.config.beta_schedule == text_pipe.scheduler.config.beta_schedule
    results = {}
    original = text_pipe.scheduler
    try:
        for name, sched in (("ddim", base), ("dpm", dpm)):
            text_pipe.scheduler = sched
            results[name] = _run(text_pipe, prompt="a top", num_inference_steps=3).frames
            assert np.isfinite(results[name]).all()
    finally:
        text_pipe.scheduler = original
    assert np.abs(results["ddim"] - results["dpm"]).max() > 1e-4
    with pytest.raises(ValueError, match="valid"):
        make_scheduler("euler", base.config)
