"""3D-aware classifier-free guidance (docs/method.md Eq. 3): the maths and what each branch sees."""

import numpy as np
import pytest
import torch

from diffusion4d.guidance import active_branches, guided_prediction, motion_tensor, split_branches


# ---------------------------------------------------------------------------- pure maths
def test_zero_weights_give_the_conditional_prediction():
    cond = torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(guided_prediction(cond, None, None, 0.0, 0.0), cond)
    assert active_branches(0.0, 0.0) == ["cond"]
    assert active_branches(7.0, 0.0) == ["cond", "uncond"]
    assert active_branches(0.0, 0.5) == ["cond", "prior"]
    assert active_branches(7.0, 0.5) == ["cond", "uncond", "prior"]


def test_combination_is_eq3():
    g = torch.Generator().manual_seed(0)
    c, u, p = (torch.randn(2, 3, 4, 5, 5, generator=g) for _ in range(3))
    w1, w2 = 7.0, 0.5
    expected = c + w1 * (c - u) + w2 * (c - p)
    torch.testing.assert_close(guided_prediction(c, u, p, w1, w2), expected)
    # element-wise on numbers, written out
    assert guided_prediction(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(2.0), 2.0, 3.0).item() == pytest.approx(
        1.0 + 2.0 * 0.5 + 3.0 * (-1.0)
    )


def test_missing_branch_is_an_error():
    c = torch.zeros(1)
    with pytest.raises(ValueError, match="unconditional"):
        guided_prediction(c, None, c, 1.0, 0.0)
    with pytest.raises(ValueError, match="prior"):
        guided_prediction(c, c, None, 1.0, 1.0)


def test_motion_tensor_and_split():
    assert torch.isnan(motion_tensor(None, 3)).all()
    assert motion_tensor(0.25, 3).tolist() == [0.25] * 3
    assert motion_tensor([0.1, 0.2], 2).tolist() == pytest.approx([0.1, 0.2])
    with pytest.raises(ValueError):
        motion_tensor([0.1, 0.2], 3)
    x = torch.arange(6.0)
    parts = split_branches(x, ["cond", "uncond", "prior"])
    assert parts["uncond"].tolist() == [2.0, 3.0]


# ---------------------------------------------------------------------------- pipeline branches
@pytest.fixture(scope="module")
def pipe():
    from diffusion4d.pipelines.tiny import tiny_pipeline

    return tiny_pipeline(static_conditioning=True, image_conditioning=True, with_prior=True)


class Spy:
    """Records the keyword inputs of every forward of a module (forward pre-hook)."""

    def __init__(self, module):
        self.calls = []
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.calls.append({"args": args, **{k: v for k, v in kwargs.items()}})

    def remove(self):
        self.handle.remove()


def _branches(pipe, batch=1):
    from diffusion4d.pipelines import BranchInputs

    g = torch.Generator().manual_seed(1)
    text = pipe.encode_prompt(["a dancing robot"] * batch, "cpu")
    empty = pipe.encode_prompt([""] * batch, "cpu")
    static = torch.randn(batch, 3, 4, 16, 16, generator=g)
    image = torch.randn(batch, 3, 16, 16, generator=g)
    cond = BranchInputs(text, torch.full((batch,), 0.3), static, image)
    uncond = BranchInputs(empty, torch.full((batch,), float("nan")), torch.zeros_like(static), torch.zeros_like(image))
    cams = torch.as_tensor(pipe.prepare_cameras(4, 16, 16, 0.0, 0.0, 2.0).c2w, dtype=torch.float32)[None].expand(batch, -1, -1, -1)
    latents = torch.randn(batch, 3, 4, 16, 16, generator=g)
    return {"cond": cond, "uncond": uncond}, cams, latents


def _forward(unet, latents, t, x, cams, m):
    return unet(
        latents, t, encoder_hidden_states=x.encoder_hidden_states, motion_magnitude=m, camera_c2w=cams,
        static_latents=x.static_latents, image_latents=x.image_latents,
    ).sample


def test_pipeline_guidance_matches_manual_computation(pipe):
    branches, cams, latents = _branches(pipe)
    t = torch.tensor(500)
    cond, uncond = branches["cond"], branches["uncond"]
    with torch.no_grad():
        e_c = _forward(pipe.unet, latents, t, cond, cams, cond.motion_magnitude)
        e_u = _forward(pipe.unet, latents, t, uncond, cams, uncond.motion_magnitude)
        # the self prior: this network given y only (m = 0, image / static inputs dropped)
        prior_x = pipe.prior_inputs(cond, uncond)
        assert prior_x.static_latents.abs().max() == 0 and prior_x.image_latents.abs().max() == 0
        e_self = _forward(pipe.unet, latents, t, prior_x, cams, torch.zeros(1))
        # the separate prior is a text(+camera, motion) model without static/image inputs
        e_sep = pipe.prior_unet(latents, t, encoder_hidden_states=cond.encoder_hidden_states, motion_magnitude=torch.zeros(1), camera_c2w=cams).sample
        # branches really differ (otherwise the test below could not fail)
        assert (e_c - e_u).abs().max() > 1e-3 and (e_c - e_self).abs().max() > 1e-3
        for batch_branches in (True, False):
            out = pipe.predict(latents, t, branches, cams, 0.0, 0.0, "self", batch_branches)
            torch.testing.assert_close(out, e_c, atol=1e-5, rtol=1e-4)
            out = pipe.predict(latents, t, branches, cams, 7.0, 0.5, "self", batch_branches)
            torch.testing.assert_close(out, e_c + 7.0 * (e_c - e_u) + 0.5 * (e_c - e_self), atol=1e-4, rtol=1e-4)
            out = pipe.predict(latents, t, branches, cams, 3.0, 1.5, "separate", batch_branches)
            torch.testing.assert_close(out, e_c + 3.0 * (e_c - e_u) + 1.5 * (e_c - e_sep), atol=1e-4, rtol=1e-4)
            # the full demo's weights: no unconditional branch, the stage-1 prior only
            out = pipe.predict(latents, t, branches, cams, 0.0, 0.5, "separate", batch_branches)
            torch.testing.assert_close(out, e_c + 0.5 * (e_c - e_sep), atol=1e-4, rtol=1e-4)


def test_each_branch_sees_the_right_conditions(pipe):
    branches, cams, latents = _branches(pipe, batch=2)
    cond, uncond = branches["cond"], branches["uncond"]
    spy = Spy(pipe.unet)
    try:
        with torch.no_grad():
            pipe.predict(latents, torch.tensor(10), branches, cams, 7.0, 0.5, "self", batch_branches=True)
    finally:
        spy.remove()
    assert len(spy.calls) == 1  # one batched forward: [cond, uncond, prior]
    call = spy.calls[0]
    text = call["encoder_hidden_states"].chunk(3)
    torch.testing.assert_close(text[0], cond.encoder_hidden_states)
    torch.testing.assert_close(text[1], uncond.encoder_hidden_states)  # text dropped: empty prompt
    torch.testing.assert_close(text[2], cond.encoder_hidden_states)  # the prior keeps y
    m = call["motion_magnitude"].tolist()
    assert m[:2] == pytest.approx([0.3, 0.3]) and np.isnan(m[2:4]).all() and m[4:] == [0.0, 0.0]
    static, image = call["static_latents"].chunk(3), call["image_latents"].chunk(3)
    torch.testing.assert_close(static[0], cond.static_latents)
    assert static[1].abs().max() == 0 and image[1].abs().max() == 0  # dropped -> zeros
    assert static[2].abs().max() == 0 and image[2].abs().max() == 0  # eps_bar(z_t, y, t): conditioned on y only
    torch.testing.assert_close(call["camera_c2w"], torch.cat([cams] * 3))  # cameras in every branch


def test_separate_prior_runs_on_the_prior_network(pipe):
    branches, cams, latents = _branches(pipe)
    spy_unet, spy_prior = Spy(pipe.unet), Spy(pipe.prior_unet)
    try:
        with torch.no_grad():
            pipe.predict(latents, torch.tensor(10), branches, cams, 7.0, 0.5, "separate", batch_branches=True)
            n_unet_batched = len(spy_unet.calls)
            pipe.predict(latents, torch.tensor(10), branches, cams, 0.0, 0.0, "separate", batch_branches=True)
    finally:
        spy_unet.remove()
        spy_prior.remove()
    assert n_unet_batched == 1 and spy_unet.calls[0]["encoder_hidden_states"].shape[0] == 2  # cond + uncond
    assert len(spy_prior.calls) == 1  # w1 = w2 = 0 skips both extra branches
    call = spy_prior.calls[0]
    torch.testing.assert_close(call["encoder_hidden_states"], branches["cond"].encoder_hidden_states)
    assert "static_latents" not in call and "image_latents" not in call  # the prior was not built for them
    assert call["motion_magnitude"].tolist() == [0.0]
    assert spy_unet.calls[1]["encoder_hidden_states"].shape[0] == 1  # cond only


def test_auto_prior_uses_the_checkpoints_prior_when_present(pipe):
    assert pipe.resolve_prior("auto") == "separate"
    prior_unet, pipe.prior_unet = pipe.prior_unet, None
    try:
        assert pipe.resolve_prior("auto") == "self"
    finally:
        pipe.prior_unet = prior_unet
    branches, cams, latents = _branches(pipe)
    with torch.no_grad():
        auto = pipe.predict(latents, torch.tensor(10), branches, cams, 7.0, 0.5, "auto")
        separate = pipe.predict(latents, torch.tensor(10), branches, cams, 7.0, 0.5, "separate")
    torch.testing.assert_close(auto, separate)
