"""A random-weight checkpoint in the exact diffusers layout of ``ali-vilab/text-to-video-ms-1.7b``.

Real runs start from that hub repository (ModelScope-T2V, a ``TextToVideoSDPipeline`` folder)::

    model_index.json            TextToVideoSDPipeline: scheduler, text_encoder, tokenizer, unet, vae
    scheduler/scheduler_config.json   DDIMScheduler (scaled_linear 0.00085..0.012, epsilon, steps_offset 1)
    text_encoder/               CLIPTextModel (OpenCLIP ViT-H/14 text tower: 1024-d, 23 layers, gelu)
    tokenizer/                  CLIPTokenizer (CLIP BPE, 49408 tokens, pad "!")
    unet/                       UNet3DConditionModel (320/640/1280/1280, 64 heads, cross-attention 1024)
    vae/                        AutoencoderKL (128/256/512/512, 4 latent channels, factor 8, scaling 0.18215)

:func:`write_modelscope_layout` writes the same folder with the same classes, block types and
config keys at a small width and with random (seeded) weights, so tests and benchmarks can
exercise every loader of a real run (``TextToVideoSDPipeline.from_pretrained``,
``UNet4DConditionModel.from_base``, ``load_text_stack``) without the 1.7B download. The tokenizer
is the real one: its CLIP BPE vocabulary is read from the ``open_clip_torch`` wheel
(``open_clip/bpe_simple_vocab_16e6.txt.gz``), located without importing ``open_clip``.

The ``MODELSCOPE_*_CONFIG`` dicts are the real full-size configs (constructor arguments), e.g.
``UNet3DConditionModel(**MODELSCOPE_UNET_CONFIG)`` is the 1.7B UNet with random weights.

CLI::

    python -m diffusion4d.testing.modelscope_layout --output DIR [--width 32] [--cross-attention-dim 32]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import importlib.util
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from diffusion4d.errors import UserError

HUB_ID = "ali-vilab/text-to-video-ms-1.7b"
PIPELINE_CLASS = "TextToVideoSDPipeline"

DOWN_BLOCK_TYPES = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D")
UP_BLOCK_TYPES = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D")

#: ``unet/config.json`` of the hub repo (constructor arguments; ``attention_head_dim`` is used by
#: ``UNet3DConditionModel`` as the number of heads: 64 heads in every transformer)
MODELSCOPE_UNET_CONFIG: Dict[str, object] = {
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": list(DOWN_BLOCK_TYPES),
    "downsample_padding": 1,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": list(UP_BLOCK_TYPES),
}

#: ``vae/config.json`` (the Stable Diffusion 2 VAE)
MODELSCOPE_VAE_CONFIG: Dict[str, object] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

#: ``text_encoder/config.json`` (the OpenCLIP ViT-H/14 text tower of Stable Diffusion 2)
MODELSCOPE_TEXT_ENCODER_CONFIG: Dict[str, object] = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 4096,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "pad_token_id": 1,
    "projection_dim": 512,
    "vocab_size": 49408,
}

#: ``scheduler/scheduler_config.json``
MODELSCOPE_SCHEDULER_CONFIG: Dict[str, object] = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

#: ``tokenizer/tokenizer_config.json`` / ``special_tokens_map.json`` (OpenCLIP pads with id 0, "!")
BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "!"
TOKENIZER_CONFIG: Dict[str, object] = {
    "add_prefix_space": False,
    "bos_token": BOS,
    "do_lower_case": True,
    "eos_token": EOS,
    "errors": "replace",
    "model_max_length": 77,
    "pad_token": PAD,
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": EOS,
}
SPECIAL_TOKENS_MAP: Dict[str, str] = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": EOS}

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
#: merges CLIP keeps: the vocabulary is 256 bytes x 2 (with and without ``</w>``) + merges + 2 specials
NUM_MERGES = 49152 - 256 - 2
INSTALL_HINT = "the real CLIP BPE vocabulary ships in open_clip_torch: pip install open_clip_torch"


class BPEVocabularyMissing(UserError, RuntimeError):
    """``open_clip_torch`` (which carries the CLIP BPE file) is not installed."""


# ---------------------------------------------------------------------------- tokenizer
def bpe_vocabulary_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` in the installed ``open_clip`` package (not imported)."""
    try:
        spec = importlib.util.find_spec("open_clip")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / BPE_FILE
        if path.is_file():
            return path
    raise BPEVocabularyMissing(f"{BPE_FILE} not found: {INSTALL_HINT}")


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, (chr(c) for c in chars)))


@lru_cache(maxsize=2)
def clip_vocabulary(path: Optional[str] = None) -> Tuple[Dict[str, int], List[Tuple[str, str]]]:
    """``(vocab, merges)`` of CLIP's tokenizer, built from the BPE file as CLIP builds them:
    the 256 byte characters, the same with ``</w>``, one token per merge (lines 1..48894 of the
    file), then ``<|startoftext|>`` and ``<|endoftext|>`` (ids 49406, 49407)."""
    source = Path(path) if path else bpe_vocabulary_path()
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{source} is not CLIP's BPE merges file")
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise ValueError(f"CLIP vocabulary from {source} has {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges  # type: ignore[return-value]


def write_tokenizer_files(folder: Union[str, os.PathLike]) -> Path:
    """Write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``, ``special_tokens_map.json`` as the hub repo has them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocabulary()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n")
    return folder


def clip_tokenizer(folder: Optional[Union[str, os.PathLike]] = None):
    """The real CLIP tokenizer (``CLIPTokenizer``), from ``folder`` or from a temporary copy of the files."""
    from transformers import CLIPTokenizer

    if folder is not None:
        return CLIPTokenizer.from_pretrained(str(write_tokenizer_files(folder)))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="clip_tokenizer_") as tmp:
        return CLIPTokenizer.from_pretrained(str(write_tokenizer_files(tmp)))


# ---------------------------------------------------------------------------- small configs
def _divides_all(groups: int, widths: Sequence[int]) -> bool:
    return all(w % groups == 0 for w in widths)


def small_unet_config(
    block_out_channels: Sequence[int] = (32, 32, 64, 64),
    cross_attention_dim: int = 32,
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
    sample_size: int = 8,
) -> Dict[str, object]:
    """``MODELSCOPE_UNET_CONFIG`` at a small width (same blocks, layers, attention layout)."""
    widths = list(block_out_channels)
    if len(widths) != 4:
        raise ValueError("block_out_channels must have 4 entries (3 cross-attention down blocks + 1 plain)")
    # skip connections concatenate neighbouring widths, and the temporal transformer of each block
    # splits its channels over `attention_head_dim` heads
    if not _divides_all(norm_num_groups, widths):
        raise ValueError(f"norm_num_groups {norm_num_groups} must divide every width {widths}")
    if not _divides_all(attention_head_dim, widths):
        raise ValueError(f"attention_head_dim (= number of heads) {attention_head_dim} must divide every width {widths}")
    cfg = copy.deepcopy(MODELSCOPE_UNET_CONFIG)
    cfg.update(
        block_out_channels=widths,
        cross_attention_dim=int(cross_attention_dim),
        attention_head_dim=int(attention_head_dim),
        norm_num_groups=int(norm_num_groups),
        sample_size=int(sample_size),
    )
    return cfg


def small_vae_config(block_out_channels: Sequence[int] = (16, 16, 32, 32), norm_num_groups: int = 8, sample_size: int = 64) -> Dict[str, object]:
    """``MODELSCOPE_VAE_CONFIG`` at a small width (4 levels: downsampling factor 8; 4 latent channels)."""
    widths = list(block_out_channels)
    if len(widths) != 4:
        raise ValueError("the VAE needs 4 levels (downsampling factor 8, as the real one)")
    if not _divides_all(norm_num_groups, widths):
        raise ValueError(f"norm_num_groups {norm_num_groups} must divide every VAE width {widths}")
    cfg = copy.deepcopy(MODELSCOPE_VAE_CONFIG)
    cfg.update(block_out_channels=widths, norm_num_groups=int(norm_num_groups), sample_size=int(sample_size))
    return cfg


def small_text_encoder_config(hidden_size: int = 32, layers: int = 2) -> Dict[str, object]:
    """``MODELSCOPE_TEXT_ENCODER_CONFIG`` with ``hidden_size`` (= the UNet's cross_attention_dim) and ``layers``."""
    heads = max(1, hidden_size // 64) if hidden_size >= 64 else (2 if hidden_size % 2 == 0 else 1)
    cfg = copy.deepcopy(MODELSCOPE_TEXT_ENCODER_CONFIG)
    cfg.update(
        hidden_size=int(hidden_size),
        intermediate_size=4 * int(hidden_size),
        num_attention_heads=heads,
        num_hidden_layers=int(layers),
        projection_dim=int(hidden_size),
    )
    return cfg


# ---------------------------------------------------------------------------- writer
def write_modelscope_layout(
    folder: Union[str, os.PathLike],
    *,
    block_out_channels: Sequence[int] = (32, 32, 64, 64),
    cross_attention_dim: int = 32,
    text_layers: int = 2,
    seed: int = 0,
    sample_size: int = 8,
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
    vae_block_out_channels: Sequence[int] = (16, 16, 32, 32),
    vae_norm_num_groups: int = 8,
) -> Path:
    """Write a random-weight ``TextToVideoSDPipeline`` folder in the layout of ``ali-vilab/text-to-video-ms-1.7b``.

    Args:
        folder: destination (created; existing component folders are overwritten).
        block_out_channels: the UNet's 4 widths (real: 320, 640, 1280, 1280).
        cross_attention_dim: text width, shared by the UNet and the CLIP text model (real: 1024).
        text_layers: CLIP text transformer layers (real: 23).
        seed: weights are drawn with ``torch.manual_seed(seed)`` (same seed -> same weights).
        sample_size: the UNet's latent side (real: 32, i.e. 256 px frames).
        attention_head_dim: number of attention heads of the UNet (diffusers' naming; real: 64).
        norm_num_groups: UNet group-norm groups (real: 32); must divide every width.
        vae_block_out_channels, vae_norm_num_groups: the VAE's 4 widths and groups (real: 128..512, 32).

    Returns:
        ``Path(folder)``.

    Raises:
        BPEVocabularyMissing: ``open_clip_torch`` (the source of the real CLIP vocabulary) is not installed.
    """
    folder = Path(folder)
    bpe_vocabulary_path()  # fail before writing anything when the vocabulary is missing
    import diffusers
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg = small_unet_config(block_out_channels, cross_attention_dim, attention_head_dim, norm_num_groups, sample_size)
    vae_cfg = small_vae_config(vae_block_out_channels, vae_norm_num_groups, sample_size * 8)
    text_cfg = small_text_encoder_config(cross_attention_dim, text_layers)
    folder.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        UNet3DConditionModel(**unet_cfg).save_pretrained(str(folder / "unet"), safe_serialization=True)
        torch.manual_seed(seed + 1)
        AutoencoderKL(**vae_cfg).save_pretrained(str(folder / "vae"), safe_serialization=True)
        torch.manual_seed(seed + 2)
        CLIPTextModel(CLIPTextConfig(**text_cfg)).save_pretrained(str(folder / "text_encoder"), safe_serialization=True)
    finally:
        torch.random.set_rng_state(state)
    write_tokenizer_files(folder / "tokenizer")
    # the hub's file as written (DDIMScheduler.from_pretrained fills the keys newer diffusers added)
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    sched = {"_class_name": "DDIMScheduler", "_diffusers_version": diffusers.__version__, **MODELSCOPE_SCHEDULER_CONFIG}
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched, indent=2) + "\n")
    index = {
        "_class_name": PIPELINE_CLASS,
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return folder


def unet_parameter_count(config: Optional[Dict[str, object]] = None) -> int:
    """Parameters of ``UNet3DConditionModel(**config)`` (default: the real one) without allocating it."""
    import torch
    from diffusers import UNet3DConditionModel

    with torch.device("meta"):
        model = UNet3DConditionModel(**(config or MODELSCOPE_UNET_CONFIG))
    return sum(p.numel() for p in model.parameters())


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m diffusion4d.testing.modelscope_layout",
        description=f"write a random-weight checkpoint in the diffusers layout of {HUB_ID}",
    )
    p.add_argument("--output", required=True, help="destination folder")
    p.add_argument("--width", type=int, default=32, help="UNet base width: block_out_channels = (w, w, 2w, 2w) (real: 320)")
    p.add_argument("--cross-attention-dim", type=int, default=32, help="text width (real: 1024)")
    p.add_argument("--text-layers", type=int, default=2, help="CLIP text layers (real: 23)")
    p.add_argument("--heads", type=int, default=8, help="UNet attention heads, diffusers' attention_head_dim (real: 64)")
    p.add_argument("--norm-groups", type=int, default=8, help="UNet group-norm groups (real: 32)")
    p.add_argument("--sample-size", type=int, default=8, help="latent side (real: 32)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    w = a.width
    try:
        out = write_modelscope_layout(
            a.output,
            block_out_channels=(w, w, 2 * w, 2 * w),
            cross_attention_dim=a.cross_attention_dim,
            text_layers=a.text_layers,
            seed=a.seed,
            sample_size=a.sample_size,
            attention_head_dim=a.heads,
            norm_num_groups=a.norm_groups,
        )
    except BPEVocabularyMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
