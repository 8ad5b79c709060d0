"""latents.encode_frames/decode_latents and text.load_text_stack/encode_prompts."""

import pytest
import torch

from diffusers import AutoencoderKL

from diffusion4d.errors import UserError
from diffusion4d.models import decode_latents, encode_frames, encode_prompts, load_text_stack
from diffusion4d.models.text import check_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are ~10x faster with one thread on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pixel_space_roundtrip():
    frames = torch.rand(2, 3, 3, 16, 16)
    z = encode_frames(None, frames)
    assert z.shape == (2, 3, 3, 16, 16)
    torch.testing.assert_close(z[:, :, 1], frames[:, 1] * 2 - 1)
    torch.testing.assert_close(decode_latents(None, z), frames)


def test_vae_shapes_and_scaling():
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, sample_size=16, scaling_factor=0.5,
    ).eval()
    frames = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        z = encode_frames(vae, frames, chunk_size=2)
        ref = vae.encode(frames[0, 1:2] * 2 - 1).latent_dist.mode() * 0.5
        out = decode_latents(vae, z)
    assert z.shape == (1, 4, 3, 8, 8)
    torch.testing.assert_close(z[0, :, 1], ref[0])
    assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1


def test_minilm_text_stack():
    tokenizer, encoder = load_text_stack("minilm")
    emb = encode_prompts(tokenizer, encoder, ["a red cube spinning", ""], device="cpu")
    assert emb.shape == (2, 77, 384)
    assert not torch.allclose(emb[0], emb[1])


def test_tokenizer_without_vocabulary_raises(tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]))
    with pytest.raises(UserError, match="vocabulary did not load"):
        check_tokenizer(BertTokenizer(str(tmp_path / "vocab.txt")), "test")
    with pytest.raises(UserError):
        load_text_stack(tmp_path / "missing")
