"""CLIP image and text embeddings for CLIP-F, CLIP-O and CLIP-text.

The model is a transformers ``CLIPModel`` with its ``CLIPImageProcessor`` and ``CLIPTokenizer``,
loaded from a hub id or a local folder (``--clip-model``; located by
:func:`diffusion4d.weights.resolve_clip`). Scores are raw cosine similarities of the projected,
L2-normalised embeddings (no x100 scaling, no clamping), in [-1, 1]; identical images give 1.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from diffusion4d.weights import MissingWeights


class ClipLoadError(RuntimeError):
    """The CLIP model, processor or tokenizer could not be loaded (carries a MissingWeights)."""

    def __init__(self, missing: MissingWeights):
        super().__init__(missing.line())
        self.missing = missing


def _features(out) -> torch.Tensor:
    """transformers 4.x returns a tensor, 5.x an output whose ``pooler_output`` is projected."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipScorer:
    """Embeds images and prompts with one CLIP model.

    Args:
        model: ``transformers.CLIPModel`` (eval mode).
        processor: ``CLIPImageProcessor`` (resize, centre crop, normalise).
        tokenizer: ``CLIPTokenizer`` or None (then :meth:`embed_texts` raises).
        device: where the model runs.
    """

    def __init__(self, model, processor, tokenizer=None, device: Union[str, torch.device] = "cpu", batch_size: int = 32):
        self.model = model.eval().to(device)
        self.processor = processor
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, id_or_path: str, device: Union[str, torch.device] = "cpu") -> "ClipScorer":
        """Load model + processor + tokenizer from ``id_or_path``; raise :class:`ClipLoadError` if absent.

        The tokenizer is checked: offline, ``CLIPTokenizer.from_pretrained(<hub id>)`` can return a
        tokenizer with only its 2 special tokens instead of raising, which would silently score
        every prompt as the empty string.
        """
        from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

        how = "pass --clip-model a folder holding a saved CLIPModel, CLIPImageProcessor and CLIPTokenizer"
        try:
            model = CLIPModel.from_pretrained(id_or_path)
            processor = CLIPImageProcessor.from_pretrained(id_or_path)
        except (OSError, ValueError) as err:
            raise ClipLoadError(MissingWeights("clip", id_or_path, [id_or_path], f"{how} ({type(err).__name__}: {str(err).splitlines()[0]})")) from err
        try:
            tokenizer = CLIPTokenizer.from_pretrained(id_or_path)
        except (OSError, ValueError) as err:
            raise ClipLoadError(MissingWeights("clip", f"{id_or_path} tokenizer", [id_or_path], how)) from err
        check_tokenizer(tokenizer, model.config.text_config.vocab_size, id_or_path)
        return cls(model, processor, tokenizer, device)

    @torch.no_grad()
    def embed_images(self, images: np.ndarray) -> torch.Tensor:
        """float RGB ``[N, H, W, 3]`` in [0, 1] -> L2-normalised embeddings ``[N, D]`` (on CPU)."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected [N, H, W, 3] images, got shape {images.shape}")
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            chunk = [np.asarray(im, dtype=np.float32) for im in images[i : i + self.batch_size]]
            pixels = self.processor(images=chunk, return_tensors="pt", do_rescale=False).pixel_values
            feats = _features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts -> L2-normalised embeddings ``[N, D]`` (on CPU)."""
        if self.tokenizer is None:
            raise RuntimeError("this ClipScorer has no tokenizer")
        max_len = int(self.model.config.text_config.max_position_embeddings)
        tokens = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
        feats = _features(
            self.model.get_text_features(input_ids=tokens.input_ids.to(self.device), attention_mask=tokens.attention_mask.to(self.device))
        )
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu()


def check_tokenizer(tokenizer, model_vocab_size: int, source: str) -> None:
    """Raise :class:`ClipLoadError` when ``tokenizer`` cannot be the model's real tokenizer."""
    size = int(getattr(tokenizer, "vocab_size", 0) or 0)
    probe = tokenizer("a photo of a red chair").input_ids
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    content = [t for t in probe if t not in specials]
    reason: Optional[str] = None
    if size <= len(specials) or size < 3:
        reason = f"tokenizer has only {size} tokens (its vocabulary did not load)"
    elif not content:
        reason = "tokenizer maps a plain sentence to special tokens only (its vocabulary did not load)"
    elif size > model_vocab_size:
        reason = f"tokenizer has {size} tokens but the text model only {model_vocab_size}"
    if reason:
        raise ClipLoadError(MissingWeights("clip", f"{source} tokenizer", [source], f"{reason}; provide vocab/merges with the model folder"))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of L2-normalised ``[N, D]`` embeddings (``b`` may be ``[1, D]``) -> ``[N]``."""
    return (a * b).sum(-1)


def nearest_azimuth_indices(pred_azimuths: Sequence[float], ref_azimuths: Sequence[float]) -> List[int]:
    """For each predicted view, the reference view with the nearest azimuth (circular, degrees).

    Used to pair views when a prediction has a different number of orbit frames than the
    ground truth (e.g. a 16-frame generation vs a 24-frame render); equal lengths pair by index.
    """
    if len(pred_azimuths) == len(ref_azimuths):
        return list(range(len(pred_azimuths)))
    ref = np.asarray(ref_azimuths, dtype=np.float64)
    out = []
    for az in pred_azimuths:
        d = np.abs((ref - float(az) + 180.0) % 360.0 - 180.0)
        out.append(int(np.argmin(d)))
    return out
