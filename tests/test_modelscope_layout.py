"""The random-weight ModelScope-T2V checkpoint (diffusion4d.testing.modelscope_layout) loads
like the real ali-vilab/text-to-video-ms-1.7b: with diffusers' TextToVideoSDPipeline and with the
project's own loaders, with the real CLIP tokenizer."""

import json

import pytest
import torch

from diffusion4d.testing import modelscope_layout as ml

def _bpe_available() -> bool:
    try:
        ml.bpe_vocabulary_path()
    except ml.BPEVocabularyMissing:
        return False
    return True


needs_bpe = pytest.mark.skipif(not _bpe_available(), reason="needs open_clip_torch (pip install open_clip_torch)")

PROMPT = "a red cube spinning"
PROMPT_IDS = [49406, 320, 736, 11353, 13987, 49407]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    if not _bpe_available():
        pytest.skip("needs open_clip_torch (pip install open_clip_torch)")
    return ml.write_modelscope_layout(tmp_path_factory.mktemp("ms") / "text-to-video-ms-tiny")


@needs_bpe
def test_files_and_configs_match_the_hub_layout(layout):
    index = json.loads((layout / "model_index.json").read_text())
    assert index["_class_name"] == "TextToVideoSDPipeline"
    assert set(index) == {"_class_name", "_diffusers_version", "scheduler", "text_encoder", "tokenizer", "unet", "vae"}
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    assert index["unet"] == ["diffusers", "UNet3DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (layout / "tokenizer" / name).is_file()
    unet = json.loads((layout / "unet" / "config.json").read_text())
    assert unet["_class_name"] == "UNet3DConditionModel"
    assert unet["down_block_types"] == ["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"]
    assert unet["up_block_types"] == ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3
    assert unet["layers_per_block"] == 2 and unet["in_channels"] == 4 and unet["out_channels"] == 4
    assert all(w % unet["norm_num_groups"] == 0 and w % unet["attention_head_dim"] == 0 for w in unet["block_out_channels"])
    vae = json.loads((layout / "vae" / "config.json").read_text())
    assert len(vae["block_out_channels"]) == 4 and vae["latent_channels"] == 4 and vae["scaling_factor"] == 0.18215
    text = json.loads((layout / "text_encoder" / "config.json").read_text())
    assert text["hidden_size"] == unet["cross_attention_dim"]
    assert (text["vocab_size"], text["max_position_embeddings"], text["hidden_act"]) == (49408, 77, "gelu")
    sched = json.loads((layout / "scheduler" / "scheduler_config.json").read_text())
    expected = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")  # fmt: skip
    assert {k: sched[k] for k in expected} == expected and sched["_class_name"] == "DDIMScheduler"
    # the real full-size config builds the 1.7B-class UNet (counted on the meta device)
    assert ml.MODELSCOPE_UNET_CONFIG["block_out_channels"] == [320, 640, 1280, 1280]
    assert 1.2e9 < ml.unet_parameter_count() < 1.6e9


@needs_bpe
def test_real_clip_token_ids(layout):
    vocab, merges = ml.clip_vocabulary()
    assert len(vocab) == 49408 and len(merges) == 49152 - 256 - 2
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(layout / "tokenizer"))
    assert tok(PROMPT).input_ids == PROMPT_IDS
    padded = tok([PROMPT], padding="max_length", max_length=77).input_ids[0]
    assert len(padded) == 77 and padded[:6] == PROMPT_IDS and padded[6] == 0  # pad "!" = id 0, as OpenCLIP


@needs_bpe
def test_diffusers_pipeline_and_project_loaders(layout):
    import diffusers

    from diffusion4d.models import UNet4DConditionModel, encode_prompts, load_text_stack

    pipe = diffusers.TextToVideoSDPipeline.from_pretrained(str(layout))
    assert type(pipe.unet).__name__ == "UNet3DConditionModel" and type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.vae_scale_factor == 8 and pipe.tokenizer(PROMPT).input_ids == PROMPT_IDS

    tokenizer, text_encoder = load_text_stack(layout)
    assert type(tokenizer).__name__.startswith("CLIPTokenizer") and tokenizer(PROMPT).input_ids == PROMPT_IDS
    ctx = encode_prompts(tokenizer, text_encoder, [PROMPT, ""])
    assert ctx.shape == (2, 77, pipe.unet.config.cross_attention_dim)

    unet = UNet4DConditionModel.from_base(layout, num_frames=2).eval()
    base_sd = pipe.unet.state_dict()
    assert all(torch.equal(base_sd[k], v) for k, v in unet.state_dict().items() if k in base_sd and k != "conv_in.weight")
    torch.manual_seed(0)
    s = unet.config.sample_size
    x = torch.randn(2, 4, 2, s, s)
    with torch.no_grad():
        out = unet(x, torch.tensor([10, 500]), ctx, motion_magnitude=torch.tensor([0.02, float("nan")]),
                   camera_c2w=torch.eye(4).expand(2, 2, 4, 4)).sample  # fmt: skip
        ref = pipe.unet(x, torch.tensor([10, 500]), ctx).sample
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.allclose(out, ref, atol=1e-5)  # new 4D modules start output-preserving


def test_missing_open_clip_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(ml.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ml.BPEVocabularyMissing, match="pip install open_clip_torch"):
        ml.write_modelscope_layout(tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert ml.main(["--output", str(tmp_path / "y")]) == 2
