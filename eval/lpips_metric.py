"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with offline-loadable backbones.

``lpips.LPIPS(net="alex")`` would download the torchvision ImageNet backbone at construction.
Here the network is built with a random trunk and its weights are then copied from a local
torchvision checkpoint (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, found by
:mod:`eval.weights`); the calibrated linear layers ship inside the ``lpips`` wheel (v0.1).
Inputs: RGB in [0, 1] composited over white, ``[N, 3, H, W]``; lower is better, identical
images give 0.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, Union

import torch

PathLike = Union[str, Path]


def _load_backbone_state(path: PathLike) -> Dict[str, torch.Tensor]:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a state dict")
    return state


def build_lpips(backbone_path: PathLike, net: str = "alex", device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """An ``lpips.LPIPS`` module whose trunk is loaded from the torchvision checkpoint ``backbone_path``.

    The checkpoint may be the full torchvision state dict or only its ``features.*`` entries.
    Raises ValueError when a trunk parameter is missing or has the wrong shape.
    """
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    state = _load_backbone_state(backbone_path)
    with torch.no_grad():
        for name, param in model.net.named_parameters():
            match = re.fullmatch(r"slice\d+\.(\d+)\.(weight|bias)", name)
            if match is None:
                raise ValueError(f"unexpected LPIPS trunk parameter {name}")
            key = f"features.{match.group(1)}.{match.group(2)}"
            if key not in state:
                raise ValueError(f"{backbone_path} has no {key}: not a torchvision {net} checkpoint")
            if tuple(state[key].shape) != tuple(param.shape):
                raise ValueError(f"{backbone_path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(param.shape)}")
            param.copy_(state[key])
    return model.eval().to(device)


@torch.no_grad()
def lpips_per_frame(model: torch.nn.Module, pred: torch.Tensor, target: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """LPIPS of ``[N, 3, H, W]`` images in [0, 1] -> ``[N]``."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    device = next(model.parameters()).device
    out = []
    for i in range(0, pred.shape[0], batch_size):
        a = pred[i : i + batch_size].to(device).float()
        b = target[i : i + batch_size].to(device).float()
        out.append(model(a, b, normalize=True).flatten().cpu())
    return torch.cat(out)
