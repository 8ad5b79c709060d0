"""Tiny, randomly initialised stand-ins for the metric networks (tests and smoke runs only).

They are written to disk in the same formats as the real weights, so the code under test loads
them through exactly the path real weights take (``--clip-model``, ``--weights-dir``). Numbers
computed with them are meaningless as scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch

PathLike = Union[str, Path]


def write_tiny_clip(folder: PathLike, image_size: int = 32, seed: int = 0) -> Path:
    """Save a tiny random ``CLIPModel`` + ``CLIPImageProcessor`` + ``CLIPTokenizer`` to ``folder``.

    The tokenizer has a byte-level vocabulary of printable ASCII (with and without ``</w>``),
    no merges, and CLIP's two special tokens.
    """
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    vocab = {}
    for suffix in ("", "</w>"):
        for code in range(33, 127):
            vocab[chr(code) + suffix] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = bos, eos
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


def write_random_lpips_backbone(path: PathLike, net: str = "alex", seed: int = 0) -> Path:
    """A torchvision-shaped ImageNet checkpoint (``features.*`` entries only) with random weights."""
    import torchvision

    torch.manual_seed(seed)
    model = {"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16}[net]()
    state = {f"features.{k}": v for k, v in model.features.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def write_tiny_i3d(path: PathLike, num_classes: int = 12, width: float = 1 / 16, seed: int = 0) -> Path:
    """An InceptionI3d state dict (``i3d_pretrained_400.pt`` layout) of a tiny random network.

    Convolutions use Kaiming-normal initialisation so activations do not vanish through the
    network (PyTorch's default init shrinks them to ~1e-6 at the logits).
    """
    from diffusion4d.eval.i3d_model import InceptionI3d

    torch.manual_seed(seed)
    net = InceptionI3d(num_classes=num_classes, width=width)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
