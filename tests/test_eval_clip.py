"""CLIP scores with a tiny random CLIPModel saved to disk and loaded through --clip-model's code path."""

import numpy as np
import pytest
import torch

from diffusion4d import weights as W
from diffusion4d.eval.clip_scores import ClipLoadError, ClipScorer, check_tokenizer, cosine, nearest_azimuth_indices
from diffusion4d.eval.testing import write_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_resolve_and_load_tiny_clip(tiny_clip_dir, tmp_path):
    assert W.resolve_clip(str(tiny_clip_dir)) == str(tiny_clip_dir)
    # a hub-like id found under --weights-dir by its last path component
    assert W.resolve_clip("someorg/tiny-clip", tiny_clip_dir.parent) == str(tiny_clip_dir)
    scorer = ClipScorer.from_pretrained(W.resolve_clip(str(tiny_clip_dir)))
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 40, 40, 3)).astype(np.float32)
    emb = scorer.embed_images(images)
    assert emb.shape == (3, 8)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    same = cosine(emb, scorer.embed_images(images.copy()))
    assert torch.allclose(same, torch.ones(3), atol=1e-5)  # identical inputs -> similarity 1
    other = cosine(emb, scorer.embed_images(1.0 - images))
    assert (other < 1 - 1e-4).all()
    text = scorer.embed_texts(["a red chair", "a blue car"])
    assert text.shape == (2, 8)
    assert not torch.allclose(text[0], text[1])


def test_offline_hub_id_is_reported_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    missing = W.resolve_clip("openai/clip-vit-base-patch32", tmp_path)
    assert isinstance(missing, W.MissingWeights)
    assert "openai/clip-vit-base-patch32" in missing.line() and "--clip-model" in missing.line()


def test_two_token_tokenizer_fails_loudly(tiny_clip_dir):
    from transformers import CLIPTokenizer

    broken = CLIPTokenizer(vocab={"<|startoftext|>": 0, "<|endoftext|>": 1}, merges=[])
    with pytest.raises(ClipLoadError, match="tokenizer"):
        check_tokenizer(broken, 49408, "openai/clip-vit-base-patch32")
    good = CLIPTokenizer.from_pretrained(tiny_clip_dir)
    check_tokenizer(good, good.vocab_size, str(tiny_clip_dir))
    with pytest.raises(ClipLoadError, match="only"):
        check_tokenizer(good, good.vocab_size - 10, str(tiny_clip_dir))


def test_folder_without_config_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    missing = W.resolve_clip(str(tmp_path / "empty"))
    assert isinstance(missing, W.MissingWeights) and "config.json" in missing.line()


def test_nearest_azimuth_pairs():
    assert nearest_azimuth_indices([0, 90, 180], [10, 20, 30]) == [0, 1, 2]  # same length: by index
    gt = [i * 15.0 for i in range(24)]
    pred = [i * 22.5 for i in range(16)]
    idx = nearest_azimuth_indices(pred, gt)
    assert idx[0] == 0 and idx[8] == 12 and len(idx) == 16
    assert nearest_azimuth_indices([359.0], [0.0, 180.0, 270.0]) == [0]  # circular
