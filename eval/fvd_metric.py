"""Frechet Video Distance (Unterthiner et al. 2018) with the common PyTorch I3D detectors.

Protocol (the one of StyleGAN-V and most FVD code since):

1. each orbit becomes ONE 16-frame clip. ``frames="resample"`` (default) takes the frames at
   ``round(linspace(0, T-1, 16))``: a 24-frame orbit is subsampled uniformly over the whole
   360 degrees, an orbit shorter than 16 frames repeats frames (nearest-neighbour in time).
   ``frames="first"`` takes frames 0..15 and pads a short orbit by repeating its last frame;
2. RGB composited over white, resized (bilinear, shorter side) to 224 and centre-cropped to
   224x224, scaled to [-1, 1], layout ``[B, 3, 16, 224, 224]``;
3. I3D (Kinetics-400) features: the 400 pre-softmax logits. Either the TorchScript detector
   ``i3d_torchscript.pt`` (called with ``rescale=False, resize=False, return_features=True``)
   or an :class:`diffusion4d.eval.i3d_model.InceptionI3d` state dict ``i3d_pretrained_400.pt``;
4. FVD = Frechet distance between Gaussians fitted to the predicted and the ground-truth
   feature sets (mean, covariance with ``ddof=1``)::

       ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

With few videos (the paper uses 20 assets) the covariances are rank deficient; the trace of the
matrix square root is still well defined (eigenvalues of ``S1^(1/2) S2 S1^(1/2)``, clipped at 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

from diffusion4d.eval.i3d_model import InceptionI3d

FrameRule = Literal["resample", "first"]
CLIP_FRAMES = 16
RESOLUTION = 224


def clip_indices(num_frames: int, length: int = CLIP_FRAMES, rule: FrameRule = "resample") -> np.ndarray:
    """Frame indices ``[length]`` of the FVD clip taken from an orbit of ``num_frames`` frames."""
    if num_frames < 1:
        raise ValueError("an orbit needs at least one frame")
    if rule == "resample":
        return np.round(np.linspace(0, num_frames - 1, length)).astype(np.int64)
    if rule == "first":
        return np.minimum(np.arange(length), num_frames - 1)
    raise ValueError(f"unknown FVD frame rule {rule!r}; valid: resample, first")


def preprocess(frames_rgb: np.ndarray, resolution: int = RESOLUTION, length: int = CLIP_FRAMES, rule: FrameRule = "resample") -> torch.Tensor:
    """An orbit ``[T, H, W, 3]`` float RGB in [0, 1] -> an I3D input ``[3, length, res, res]`` in [-1, 1]."""
    idx = clip_indices(frames_rgb.shape[0], length, rule)
    x = torch.from_numpy(np.ascontiguousarray(frames_rgb[idx], dtype=np.float32)).permute(0, 3, 1, 2)  # [L, 3, H, W]
    h, w = x.shape[-2:]
    scale = resolution / min(h, w)
    size = (max(resolution, int(round(h * scale))), max(resolution, int(round(w * scale))))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    x = x[:, :, top : top + resolution, left : left + resolution]
    return (x * 2.0 - 1.0).clamp(-1, 1).permute(1, 0, 2, 3).contiguous()


Detector = Callable[[torch.Tensor], torch.Tensor]


def load_detector(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Detector:
    """A callable ``[B, 3, 16, 224, 224]`` in [-1, 1] -> ``[B, 400]`` features from an I3D file.

    ``*.pt`` files that are TorchScript archives are used as the StyleGAN-V detector; anything
    else must be an InceptionI3d state dict (optionally under a ``state_dict`` key).
    """
    path = Path(path)
    try:
        scripted = torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError:
        scripted = None
    if scripted is not None:
        def run_scripted(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return scripted(x.to(device), rescale=False, resize=False, return_features=True).float().cpu()

        return run_scripted
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    model = InceptionI3d.from_state_dict(state).eval().to(device)

    def run_module(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x.to(device)).float().cpu()

    return run_module


def gaussian_stats(features: np.ndarray):
    """``[N, D]`` features (N >= 2) -> (mean ``[D]``, covariance ``[D, D]``, ddof=1), float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors [N, D], got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance of two Gaussians, via symmetric eigendecompositions.

    ``tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))`` (a symmetric PSD matrix, so the
    eigenvalues are real; tiny negative ones from round-off are clipped to 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1_half = _psd_sqrt(np.asarray(sigma1, np.float64))
    middle = s1_half @ np.asarray(sigma2, np.float64) @ s1_half
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(value, 0.0)


def frechet_distance_reference(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The textbook form with ``scipy.linalg.sqrtm(S1 S2)`` (slow, obvious; tests compare against it)."""
    from scipy import linalg

    covmean = linalg.sqrtm(np.asarray(sigma1, np.float64) @ np.asarray(sigma2, np.float64))
    covmean = np.real(covmean)
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fvd_from_features(pred: np.ndarray, gt: np.ndarray) -> float:
    """FVD between feature sets ``[N1, D]`` and ``[N2, D]`` (each N >= 2)."""
    return frechet_distance(*gaussian_stats(pred), *gaussian_stats(gt))
