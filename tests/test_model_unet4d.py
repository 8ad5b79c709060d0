"""UNet4DConditionModel: base equivalence at init, shapes per conditioning mode, loading rules."""

import json

import pytest
import torch

from diffusers import UNet3DConditionModel

from diffusion4d.errors import UserError
from diffusion4d.models import UNet4DConditionModel

TINY = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    layers_per_block=1, norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
)
MODES = {
    "t2v": dict(),
    "static3d": dict(static_conditioning=True),
    "i2v": dict(image_conditioning=True),
    "all": dict(static_conditioning=True, image_conditioning=True),
    "pooled_text": dict(text_pooled_conditioning=True),
    "frame_time": dict(frame_time_conditioning=True),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are ~10x faster with one thread on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.manual_seed(0)
    base = UNet3DConditionModel(**TINY)
    # randomise so that zero-init of the new parts is really what keeps outputs equal
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.02 * torch.randn_like(p))
    root = tmp_path_factory.mktemp("base")
    base.save_pretrained(root / "unet")
    return root


def _inputs(batch=2, frames=3):
    g = torch.Generator().manual_seed(1)
    return dict(
        sample=torch.randn(batch, 4, frames, 8, 8, generator=g),
        timestep=torch.tensor([10, 700][:batch]),
        encoder_hidden_states=torch.randn(batch, 5, 16, generator=g),
    )


def _conditions(batch=2, frames=3):
    g = torch.Generator().manual_seed(2)
    return dict(
        motion_magnitude=torch.tensor([0.05, float("nan")][:batch]),
        camera_c2w=torch.randn(batch, frames, 4, 4, generator=g),
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_new_modules_at_init_keep_base_output(base_dir, mode):
    base = UNet3DConditionModel.from_pretrained(base_dir / "unet").eval()
    model = UNet4DConditionModel.from_base(base_dir, **MODES[mode]).eval()
    x = _inputs()
    extra = _conditions()
    if model.config.static_conditioning:
        extra["static_latents"] = torch.randn_like(x["sample"])
    if model.config.image_conditioning:
        extra["image_latents"] = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = base(**x).sample
        plain = model(**x).sample
        conditioned = model(**x, **extra).sample
    assert torch.equal(plain, expected)
    torch.testing.assert_close(conditioned, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_shapes_and_conditions_matter_after_training_step(mode):
    torch.manual_seed(0)
    model = UNet4DConditionModel(**TINY, num_frames=3, image_embed_dim=12, **MODES[mode])
    x = _inputs(batch=2, frames=3)
    extra = _conditions()
    extra["image_embeds"] = torch.randn(2, 2, 12)
    if model.config.static_conditioning:
        extra["static_latents"] = torch.randn_like(x["sample"])
    if model.config.image_conditioning:
        extra["image_latents"] = torch.randn(2, 4, 8, 8)
    out = model(**x, **extra).sample
    assert out.shape == (2, 4, 3, 8, 8)
    out.square().mean().backward()
    # the zero-init output layers get gradients, so the conditions start to matter after a step
    assert model.motion_embedding.linear_2.weight.grad.abs().sum() > 0
    assert model.camera_embedding.linear_2.weight.grad.abs().sum() > 0
    if model.config.static_conditioning or model.config.image_conditioning:
        assert model.conv_in.weight.grad[:, 4:].abs().sum() > 0


def test_pooled_text_path_follows_the_caption_and_loads_from_a_base_without_it(base_dir):
    """The pooled caption embedding starts at 0 (base output kept, see the init test), becomes a
    caption-dependent global signal once its output layer moves, and a prior without the module
    (stage 1) loads into a stage-2 model with it."""
    torch.manual_seed(0)
    model = UNet4DConditionModel(**TINY, text_pooled_conditioning=True).eval()
    with torch.no_grad():
        model.text_pooled_embedding.linear_2.weight.normal_()
        x = _inputs()
        other = dict(x, encoder_hidden_states=x["encoder_hidden_states"] + 1.0)
        pooled = model.text_pooled_embedding(x["encoder_hidden_states"], torch.float32)
        want = model.text_pooled_embedding.linear_2(torch.nn.functional.silu(
            model.text_pooled_embedding.linear_1(x["encoder_hidden_states"].mean(1))))
        torch.testing.assert_close(pooled, want)
        assert not torch.allclose(model(**x).sample, model(**other).sample)
    prior = UNet4DConditionModel.from_base(base_dir, motion_conditioning=False)
    stage2 = UNet4DConditionModel.from_base_model(prior, motion_conditioning=True, text_pooled_conditioning=True)
    assert stage2.text_pooled_embedding.linear_2.weight.abs().sum() == 0
    for k, v in prior.state_dict().items():
        torch.testing.assert_close(stage2.state_dict()[k], v, rtol=0, atol=0)


def test_frame_time_embedding_tells_frames_apart_and_loads_from_a_base_without_it(base_dir):
    """Frame i of an F-frame clip gets the embedding of animation time i / (F - 1), the same for every
    clip of the batch; once its output layer moves, identical frames denoise differently; a stage-1
    prior without the module loads into a stage-2 model with it (which starts at exactly 0)."""
    from diffusers.models.embeddings import get_timestep_embedding

    torch.manual_seed(0)
    model = UNet4DConditionModel(**TINY, frame_time_conditioning=True).eval()
    embed = model.frame_time_embedding
    with torch.no_grad():
        embed.linear_2.weight.normal_()
        got = embed(2, 5, torch.float32, torch.device("cpu"))  # [2 * 5, D]
        for i in range(5):
            features = get_timestep_embedding(torch.tensor([i / 4 * embed.scale]), embed.feature_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
            want = embed.linear_2(torch.nn.functional.silu(embed.linear_1(features)))[0]
            torch.testing.assert_close(got[i], want)
            torch.testing.assert_close(got[5 + i], want)
        x = _inputs(batch=1, frames=3)
        x["sample"] = x["sample"][:, :, :1].expand(-1, -1, 3, -1, -1).contiguous()  # three identical frames
        out = model(**x).sample
        assert not torch.allclose(out[:, :, 0], out[:, :, 2], atol=1e-4)
    prior = UNet4DConditionModel.from_base(base_dir, motion_conditioning=False)
    stage2 = UNet4DConditionModel.from_base_model(prior, frame_time_conditioning=True)
    assert stage2.config.frame_time_conditioning and stage2.frame_time_embedding.linear_2.weight.abs().sum() == 0


def test_frame_time_motion_reference_scales_the_frame_time_embedding_by_m():
    """``frame_time_motion_reference=r``: clip b's frame-time embedding times m_b / r. At m = r (and for a
    dropped m) the model equals one without the reference; at m = 0 it equals one without the frame-time
    module; in between, the per-frame embedding the blocks see is the scaled one."""
    torch.manual_seed(0)
    plain = UNet4DConditionModel(**TINY, frame_time_conditioning=True).eval()
    with torch.no_grad():
        plain.frame_time_embedding.linear_2.weight.normal_()
    gated = UNet4DConditionModel(**TINY, frame_time_conditioning=True, frame_time_motion_reference=0.04).eval()
    gated.load_state_dict(plain.state_dict())
    without = UNet4DConditionModel(**TINY).eval()
    without.load_state_dict({k: v for k, v in plain.state_dict().items() if not k.startswith("frame_time_embedding.")})
    x = _inputs()
    with torch.no_grad():
        for m in ([0.04, 0.04], [float("nan"), 0.04]):
            torch.testing.assert_close(gated(**x, motion_magnitude=torch.tensor(m)).sample, plain(**x, motion_magnitude=torch.tensor(m)).sample)
        torch.testing.assert_close(gated(**x).sample, plain(**x).sample)
        zero = torch.tensor([0.0, 0.0])
        torch.testing.assert_close(gated(**x, motion_magnitude=zero).sample, without(**x, motion_magnitude=zero).sample)
        half = gated(**x, motion_magnitude=torch.tensor([0.01, 0.02])).sample
        assert not torch.allclose(half, plain(**x, motion_magnitude=torch.tensor([0.01, 0.02])).sample, atol=1e-5)
        # the gate itself: m / r per clip, NaN -> 1, a scalar broadcast over the batch
        from diffusion4d.models.unet_4d import motion_gate

        torch.testing.assert_close(motion_gate(torch.tensor([0.01, float("nan")]), 2, 0.04, torch.device("cpu")), torch.tensor([0.25, 1.0]))
        torch.testing.assert_close(motion_gate(torch.tensor(0.02), 3, 0.04, torch.device("cpu")), torch.full((3,), 0.5))
        torch.testing.assert_close(motion_gate(None, 2, 0.04, torch.device("cpu")), torch.ones(2))


def test_frame_time_motion_anchor_first_keeps_frame_zero_and_puts_m_zero_at_one_instant():
    """``frame_time_motion_anchor="first"``: the gate scales each frame's difference to frame 0. Checked
    on the embedding the blocks receive, against the formula written out per frame, and end to end: at
    m = r it equals the ungated model; at m = 0 it equals a model whose every frame has frame 0's time."""
    from diffusion4d.models.unet_4d import gate_frame_time

    torch.manual_seed(0)
    e = torch.randn(2, 4, 6)
    gate = torch.tensor([0.25, 0.0])
    out = gate_frame_time(e, gate, "first")
    for b in range(2):
        for i in range(4):
            torch.testing.assert_close(out[b, i], e[b, 0] + gate[b] * (e[b, i] - e[b, 0]))
    torch.testing.assert_close(gate_frame_time(e, gate, "zero"), e * gate[:, None, None])
    with pytest.raises(ValueError, match="frame_time_motion_anchor"):
        gate_frame_time(e, gate, "last")
    with pytest.raises(ValueError, match="frame_time_motion_anchor"):
        UNet4DConditionModel(**TINY, frame_time_conditioning=True, frame_time_motion_reference=0.04, frame_time_motion_anchor="last")

    plain = UNet4DConditionModel(**TINY, frame_time_conditioning=True).eval()
    with torch.no_grad():
        plain.frame_time_embedding.linear_2.weight.normal_()
        plain.frame_time_embedding.linear_2.bias.normal_()
    gated = UNet4DConditionModel(**TINY, frame_time_conditioning=True, frame_time_motion_reference=0.04,
                                 frame_time_motion_anchor="first").eval()
    gated.load_state_dict(plain.state_dict())
    x = _inputs()
    with torch.no_grad():
        m = torch.tensor([0.04, 0.04])
        torch.testing.assert_close(gated(**x, motion_magnitude=m).sample, plain(**x, motion_magnitude=m).sample)
        zero = torch.tensor([0.0, 0.0])
        frozen = plain.frame_time_embedding.forward
        plain.frame_time_embedding.forward = lambda b, f, dtype, device: frozen(b, 1, dtype, device).repeat_interleave(f, dim=0)
        try:
            torch.testing.assert_close(gated(**x, motion_magnitude=zero).sample, plain(**x, motion_magnitude=zero).sample)
        finally:
            plain.frame_time_embedding.forward = frozen


def test_the_full_demo_presets_stage_2_builds_the_anchored_gate(tmp_path):
    """The README's demo (configs/demo/full.yaml) trains stage 2 from configs/train/tiny.yaml with its
    train and stage-2 overrides: they must resolve to a valid config whose model options reach the UNet,
    the gate anchored at frame 0 included (a typo or a dropped option would silently train another model)."""
    from diffusion4d.app.demo import load_demo_config
    from diffusion4d.config import load_config
    from diffusion4d.presets import resolve_preset
    from diffusion4d.testing.orbits import write_synthetic_dataset
    from diffusion4d.train.model_setup import _new_options
    from diffusion4d.train.orbit_dataset import data_motion_reference
    from diffusion4d.train.train_config import TrainConfig

    demo = load_demo_config(None, False, [])
    cfg = load_config(TrainConfig, resolve_preset("train", "tiny.yaml"), [*demo.train_overrides, *demo.stage2_overrides])
    cfg.validate()
    assert cfg.model.frame_time_motion_reference == "data"  # the gate's reference comes from the curated data
    with pytest.raises(ValueError, match="resolve"):  # the trainer resolves it before building the model
        _new_options(cfg.model, demo.frames)
    write_synthetic_dataset(tmp_path / "data", num_assets=2, num_frames=4, size=16, orbits=1)
    cfg.model.frame_time_motion_reference = data_motion_reference(str(tmp_path / "data"))  # as Trainer.setup does
    options = _new_options(cfg.model, demo.frames)
    assert options["frame_time_conditioning"] and options["frame_time_motion_anchor"] == "first"
    assert options["frame_time_motion_reference"] == cfg.model.frame_time_motion_reference > 0
    model = UNet4DConditionModel(**{**TINY, **options})
    assert model.config.frame_time_motion_anchor == "first" and model.frame_time_embedding is not None


def test_motion_null_embedding_and_nan():
    torch.manual_seed(0)
    model = UNet4DConditionModel(**TINY).eval()
    with torch.no_grad():
        model.motion_embedding.null_embedding.fill_(0.3)
        model.motion_embedding.linear_2.weight.normal_()
        x = _inputs()
        none = model(**x).sample
        nan = model(**x, motion_magnitude=torch.tensor([float("nan")] * 2)).sample
        real = model(**x, motion_magnitude=torch.tensor([0.05, 0.05])).sample
    assert torch.equal(none, nan)
    assert not torch.allclose(none, real)


def test_gradient_checkpointing_matches(base_dir):
    model = UNet4DConditionModel.from_base(base_dir, static_conditioning=True)
    model.train()
    for m in model.modules():  # dropout off, so both passes see the same function
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x = _inputs()
    model(**x).sample.sum().backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.enable_gradient_checkpointing()
    model(**x).sample.sum().backward()
    grads2 = [p.grad for p in model.parameters() if p.grad is not None]
    for a, b in zip(grads, grads2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_save_load_roundtrip_keeps_flags(tmp_path):
    model = UNet4DConditionModel(**TINY, num_frames=5, static_conditioning=True)
    model.save_pretrained(tmp_path / "u")
    assert (tmp_path / "u" / "diffusion_pytorch_model.safetensors").is_file()
    again = UNet4DConditionModel.from_pretrained(tmp_path / "u")
    assert again.config.static_conditioning and again.config.num_frames == 5 and again.config.out_channels == 4
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_from_base_refuses_i2vgenxl_and_missing(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"_class_name": "I2VGenXLUNet"}))
    with pytest.raises(UserError, match="I2VGenXLUNet"):
        UNet4DConditionModel.from_base(tmp_path)
    with pytest.raises(UserError):
        UNet4DConditionModel.from_base(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="unknown 4D option"):
        UNet4DConditionModel.from_base(tmp_path, bogus=1)
