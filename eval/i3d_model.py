"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017, "Quo Vadis, Action Recognition?").

Written from the paper's architecture with the parameter names of the widely used PyTorch
port (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ``logits.conv3d.bias``),
so the Kinetics-400 state dict ``i3d_pretrained_400.pt`` of the FVD code in VideoGPT/TATS loads
with ``load_state_dict(strict=True)``. TensorFlow "SAME" padding is computed per input size.

``width`` scales every channel count (1.0 = the real network); tests use a tiny, randomly
initialised ``width=1/16`` network through the same code path.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Inception blocks: name -> (b0, b1a, b1b, b2a, b2b, b3b) output channels at width 1.
INCEPTION_BLOCKS: List[Tuple[str, Tuple[int, ...]]] = [
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


def _same_pad(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow SAME padding (front, back) for one axis."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (pw[0], pw[1], ph[0], ph[1], pt[0], pt[1]))


class MaxPool3dSame(nn.Module):
    """3D max pooling with SAME padding (zero padding, as in the reference port)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """SAME-padded Conv3d + BatchNorm3d (eps 1e-3) + ReLU; the logits unit has bias and no BN/ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Sequence[int] = (1, 1, 1), stride: Sequence[int] = (1, 1, 1),
                 batch_norm: bool = True, activation: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(in_ch, out_ch, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_ch, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionBlock(nn.Module):
    """Four branches (1x1; 1x1->3x3x3; 1x1->3x3x3; maxpool->1x1), concatenated on channels."""

    def __init__(self, in_ch: int, out: Sequence[int]):
        super().__init__()
        self.b0 = Unit3D(in_ch, out[0])
        self.b1a = Unit3D(in_ch, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_ch, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_ch, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class InceptionI3d(nn.Module):
    """I3D up to its Kinetics logits.

    Args:
        num_classes: logits (400 for Kinetics-400).
        width: channel multiplier (1.0 = the published network).
        in_channels: 3 for RGB.

    ``forward(x)``: ``x`` ``[B, 3, T, H, W]`` in [-1, 1] (224x224, T=16 in the FVD protocol) ->
    ``[B, num_classes]`` logits averaged over the remaining time steps, the FVD feature.
    """

    def __init__(self, num_classes: int = 400, width: float = 1.0, in_channels: int = 3):
        super().__init__()
        s = lambda c: _scaled(c, width)  # noqa: E731
        self.num_classes, self.width = num_classes, width
        self.Conv3d_1a_7x7 = Unit3D(in_channels, s(64), (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(s(64), s(64))
        self.Conv3d_2c_3x3 = Unit3D(s(64), s(192), (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = s(192)
        blocks: Dict[str, InceptionBlock] = {}
        for name, out in INCEPTION_BLOCKS:
            blocks[name] = InceptionBlock(channels, [s(c) for c in out])
            channels = blocks[name].out_channels
        self.Mixed_3b, self.Mixed_3c = blocks["Mixed_3b"], blocks["Mixed_3c"]
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b, self.Mixed_4c, self.Mixed_4d = blocks["Mixed_4b"], blocks["Mixed_4c"], blocks["Mixed_4d"]
        self.Mixed_4e, self.Mixed_4f = blocks["Mixed_4e"], blocks["Mixed_4f"]
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = blocks["Mixed_5b"], blocks["Mixed_5c"]
        self.logits = Unit3D(channels, num_classes, batch_norm=False, activation=False, bias=True)

    @classmethod
    def from_state_dict(cls, state: Dict[str, torch.Tensor]) -> "InceptionI3d":
        """Build the network whose width and class count match ``state`` and load it strictly."""
        first = state["Conv3d_1a_7x7.conv3d.weight"]
        width = first.shape[0] / 64.0
        model = cls(num_classes=state["logits.conv3d.weight"].shape[0], width=width, in_channels=first.shape[1])
        model.load_state_dict(state, strict=True)
        return model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` -> last Inception block ``[B, C, T/8, H/32, W/32]``."""
        for name in ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                     "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                     "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c"):
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        # the published head: average pool [2, 7, 7] (stride 1) -> 1x1x1 conv -> mean over time.
        kernel = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        x = F.avg_pool3d(x, kernel, stride=1)
        x = self.logits(x)  # dropout is the identity in eval mode
        return x.mean(dim=(2, 3, 4))

