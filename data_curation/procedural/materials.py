"""Named colour palette and small procedural base-colour textures."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# sRGB colours; the names are the words used in captions
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "orange": (247, 127, 0),
    "yellow": (242, 204, 37),
    "green": (56, 168, 72),
    "blue": (40, 90, 210),
    "purple": (128, 60, 180),
    "pink": (236, 110, 170),
    "white": (236, 236, 236),
    "black": (30, 30, 30),
    "brown": (130, 82, 45),
    "gray": (128, 128, 128),
    "cyan": (40, 200, 210),
    "magenta": (220, 40, 220),
    "teal": (0, 120, 120),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
PATTERNS: tuple[str, ...] = ("checkered", "striped")
TEXTURE_SIZE = 64


def srgb_to_linear(rgb: tuple[int, int, int]) -> list[float]:
    """sRGB bytes -> linear floats in [0, 1] (glTF baseColorFactor is linear)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return [round(float(x), 6) for x in lin]


def pattern_png(colour: str, pattern: str, size: int = TEXTURE_SIZE, tiles: int = 8) -> bytes:
    """A [size, size] RGB PNG mixing the colour with a light tint of it.

    Args:
        colour: key of :data:`PALETTE`.
        pattern: "checkered" (tiles x tiles checker) or "striped" (horizontal stripes).
    """
    base = np.asarray(PALETTE[colour], dtype=np.float64)
    light = base + (255.0 - base) * 0.65
    idx = np.arange(size) * tiles // size
    if pattern == "checkered":
        mask = (idx[:, None] + idx[None, :]) % 2 == 1
    elif pattern == "striped":
        mask = np.broadcast_to((idx[:, None] % 2) == 1, (size, size))
    else:
        raise ValueError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")
    pixels = np.where(mask[..., None], light, base).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
