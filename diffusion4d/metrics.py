"""Image metrics shared by every stage: PSNR, SSIM and LPIPS between frames, and silhouettes.

One implementation each, used by evaluation (``eval``), the curation SSIM rule
(:mod:`diffusion4d.ssim_rule`) and benchmarks, so a number means the same everywhere.

Both run on RGB in [0, 1] composited over a WHITE background
(:func:`diffusion4d.io.frames_to_float`, the convention of every stage), compared frame by
frame at the same index; an asset's value is the mean over its frames.

* PSNR: ``10 log10(1 / MSE)`` per frame (torchmetrics, ``data_range=1``); identical frames give
  ``inf``.
* SSIM: torchmetrics' Gaussian-window SSIM (11 px, sigma 1.5, K1=0.01, K2=0.03; the SSIM map
  covers the whole frame, borders by reflection padding, and is averaged over pixels and
  channels), the configuration of the curation rule (:func:`diffusion4d.ssim_rule.ssim`), computed
  in float64; identical frames give 1.
* LPIPS (Zhang et al. 2018) through the ``lpips`` package. ``lpips.LPIPS(net="alex")`` would
  download the torchvision ImageNet trunk at construction; :func:`build_lpips` builds it with a
  random trunk and copies the weights from a local torchvision checkpoint found by the one weights
  policy of the project (:func:`diffusion4d.weights.resolve_lpips_backbone`). The calibrated linear
  layers ship inside the ``lpips`` wheel (v0.1). Lower is better; identical images give 0. Used by
  evaluation and, as an optional loss, by reconstruction (:func:`load_lpips`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def to_tensor(frames_rgb: np.ndarray) -> torch.Tensor:
    """float RGB ``[N, H, W, 3]`` in [0, 1] -> ``[N, 3, H, W]`` float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frames_rgb, dtype=np.float32)).permute(0, 3, 1, 2)


def match_size(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Resize ``pred`` ``[N, 3, h, w]`` to the target's ``H, W`` (bilinear, antialiased) if they differ."""
    if pred.shape[-2:] == target.shape[-2:]:
        return pred
    return F.interpolate(pred, size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR of ``[N, 3, H, W]`` images in [0, 1] -> ``[N]`` dB (``inf`` where identical)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return peak_signal_noise_ratio(pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)).float()


def ssim_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM of ``[N, 3, H, W]`` images in [0, 1] -> ``[N]`` (1 where identical)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    # float64: in float32, round-off in E[x^2] - mu^2 leaves identical white-background frames at 0.999997
    return structural_similarity_index_measure(
        pred.double(), target.double(), data_range=1.0, reduction="none", gaussian_kernel=True, kernel_size=11, sigma=1.5
    ).float()


#: a pixel belongs to the object when its RGB (composited over white) is farther than this from
#: white (max over channels, [0, 1]); the one threshold every silhouette in the project uses
SILHOUETTE_THRESHOLD = 0.05


def silhouette(frames_rgb: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD, background: float = 1.0) -> torch.Tensor:
    """Object masks ``[N, H, W]`` (bool) of frames ``[N, 3, H, W]`` in [0, 1] over a uniform
    ``background`` grey (white unless told otherwise)."""
    return (frames_rgb - background).abs().amax(dim=1) > threshold


def silhouette_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD) -> torch.Tensor:
    """Per-frame IoU ``[N]`` of the silhouettes of ``[N, 3, H, W]`` frames (1 where both are empty)."""
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return _mask_iou(silhouette(pred, threshold), silhouette(target, threshold))


def _mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame IoU ``[N]`` of boolean masks ``[N, H, W]`` (1 where both are empty)."""
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).float()


def view_iou_gain(pred: torch.Tensor, target: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD) -> float:
    """How much a sample follows the views of its orbit: the mean silhouette IoU of each frame ``[N, 3, H, W]``
    with the target's frame of the same index (one view at one time) minus its mean IoU with the target's
    other frames (the orbit rolled by 1 ... N-1 frames).

    A sample that shows the same silhouette in every frame scores exactly 0, whatever its shape; a copy of
    the target scores the target's own variation over the orbit (about 0 for an object that looks the same
    from every side, so compare with ``view_iou_gain(target, target)``); a sample one view late is negative.
    """
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    n = pred.shape[0]
    if n < 2:
        raise ValueError("needs at least 2 frames")
    a, b = silhouette(pred, threshold), silhouette(target, threshold)
    right = float(_mask_iou(a, b).mean())
    other = sum(float(_mask_iou(a, torch.roll(b, r, 0)).mean()) for r in range(1, n)) / (n - 1)
    return right - other


def foreground_colour(frames_rgb: torch.Tensor, threshold: float = SILHOUETTE_THRESHOLD) -> Optional[torch.Tensor]:
    """Mean RGB ``[3]`` over the object pixels (:func:`silhouette`) of frames ``[N, 3, H, W]`` in
    [0, 1] over white, in the frames' dtype; None when no pixel belongs to an object."""
    if frames_rgb.ndim != 4 or frames_rgb.shape[1] != 3:
        raise ValueError(f"frames must be [N, 3, H, W], got {tuple(frames_rgb.shape)}")
    mask = silhouette(frames_rgb, threshold)  # [N, H, W]
    if not bool(mask.any()):
        return None
    return frames_rgb.permute(0, 2, 3, 1)[mask].mean(dim=0)


# ------------------------------------------------------------------------------------- LPIPS
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


def load_lpips(net: str = "alex", weights_dir: Optional[PathLike] = None, device: Union[str, torch.device] = "cpu") -> Optional[torch.nn.Module]:
    """A frozen LPIPS network when its backbone checkpoint is found (:mod:`diffusion4d.weights`),
    else None with one log line naming the missing file and how to provide it. Never downloads."""
    import logging

    from diffusion4d.weights import MissingWeights, resolve_lpips_backbone

    found = resolve_lpips_backbone(net, weights_dir)
    if isinstance(found, MissingWeights):
        logging.getLogger(__name__).info("LPIPS skipped: %s", found.line())
        return None
    model = build_lpips(found, net=net, device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
