"""Input-image preprocessing for image-to-4D: make a user's picture look like a training frame.

Training frames (curation renders) show the object normalised to a unit box, centred at the
origin, seen from distance 2 with Blender's 35 mm field of view, over a white background.
:func:`prepare_image` turns a photo into that:

1. a foreground mask: the alpha channel of an RGBA image, or, for RGB, the pixels that differ
   from the plain background colour (estimated from the image border);
2. the mask's bounding box is cropped, centred in a square canvas and scaled so its longer side
   covers :func:`default_object_fraction` of the output (the size of a unit-box object in the
   training renders);
3. returned as RGBA (the pipeline composites it over white, the training convention).
"""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple, Union

import numpy as np
from PIL import Image

from diffusion4d.cameras import DEFAULT_FOV_DEG
from diffusion4d.errors import UserError
from diffusion4d.logging_utils import get_logger

logger = get_logger(__name__)

#: an RGB border is "plain" when its pixels stay within this distance (0..1 RGB) of their median
PLAIN_BORDER_TOLERANCE = 0.08
#: a pixel is foreground when it differs from the background colour by more than this (0..1 RGB)
FOREGROUND_THRESHOLD = 0.06


def default_object_fraction(radius: float = 2.0, fov_deg: float = DEFAULT_FOV_DEG, extent: float = 1.0) -> float:
    """Fraction of the image side covered by an object of size ``extent`` (the unit box) at the
    orbit centre, seen from ``radius`` with field of view ``fov_deg`` (0.55 for the training renders)."""
    return extent / (2.0 * radius * math.tan(math.radians(fov_deg) / 2.0))


def load_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file as uint8 ``[H, W, 4]`` (RGBA) or ``[H, W, 3]`` (RGB).

    Raises:
        UserError: the file is missing or not a readable image.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                return np.asarray(img.convert("RGBA"))
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def foreground_mask(image: np.ndarray) -> Tuple[np.ndarray, bool]:
    """Soft foreground mask ``[H, W]`` in [0, 1] of a uint8 image, and whether it is reliable.

    RGBA: the alpha channel (reliable unless fully opaque, then treated as RGB). RGB: distance to
    the background colour (median of the border pixels) above :data:`FOREGROUND_THRESHOLD`, with a
    soft ramp; unreliable (the whole image is kept) when the border is not plain.
    """
    x = image.astype(np.float32) / 255.0
    if x.shape[-1] == 4 and x[..., 3].min() < 1.0:
        return x[..., 3], True
    rgb = x[..., :3]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    spread = np.abs(border - background).max(axis=1)
    if np.quantile(spread, 0.9) > PLAIN_BORDER_TOLERANCE:
        return np.ones(rgb.shape[:2], np.float32), False
    distance = np.abs(rgb - background).max(axis=-1)
    mask = np.clip((distance - FOREGROUND_THRESHOLD / 2) / (FOREGROUND_THRESHOLD / 2), 0.0, 1.0)
    return mask.astype(np.float32), True


def prepare_image(
    image: np.ndarray,
    size: int = 256,
    object_fraction: Optional[float] = None,
) -> np.ndarray:
    """Recentre and rescale the object of ``image`` like a training frame.

    Args:
        image: uint8 ``[H, W, 3|4]`` (RGBA: alpha is the mask; RGB: on a plain background).
        size: output side in pixels (square).
        object_fraction: longer side of the object's bounding box / ``size``
            (default :func:`default_object_fraction`).

    Returns:
        uint8 straight-alpha RGBA ``[size, size, 4]``: the object, alpha = the mask (the
        pipeline and :func:`diffusion4d.io.frames_to_float` composite it over white).

    Raises:
        UserError: the image has no foreground.
    """
    if image.ndim != 3 or image.shape[-1] not in (3, 4) or image.dtype != np.uint8:
        raise UserError(f"image must be uint8 [H, W, 3|4], got {image.dtype} {image.shape}")
    fraction = default_object_fraction() if object_fraction is None else float(object_fraction)
    mask, reliable = foreground_mask(image)
    if not reliable:
        logger.warning("the image has neither transparency nor a plain background: using it whole, uncentred")
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys) == 0:
        raise UserError("the image has no foreground (empty alpha, or nothing differs from the background)")
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb = image[..., :3].astype(np.float32) / 255.0
    if not reliable:
        top, bottom, left, right = 0, image.shape[0], 0, image.shape[1]
    crop_rgb = rgb[top:bottom, left:right]
    crop_mask = mask[top:bottom, left:right]
    h, w = crop_mask.shape
    scale = fraction * size / max(h, w) if reliable else size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    premultiplied = np.concatenate([crop_rgb * crop_mask[..., None], crop_mask[..., None]], axis=-1)
    resized = np.stack(
        [np.asarray(Image.fromarray(premultiplied[..., c]).resize((new_w, new_h), Image.LANCZOS)) for c in range(4)],
        axis=-1,
    ).clip(0.0, 1.0)
    canvas = np.zeros((size, size, 4), np.float32)
    y0, x0 = (size - new_h) // 2, (size - new_w) // 2
    # the object may exceed the canvas only with object_fraction > 1: crop symmetrically
    sy, sx = max(0, -y0), max(0, -x0)
    y0, x0 = max(0, y0), max(0, x0)
    patch = resized[sy : sy + size, sx : sx + size]
    canvas[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
    alpha = canvas[..., 3:4]
    straight = np.where(alpha > 1e-6, canvas[..., :3] / np.maximum(alpha, 1e-6), 1.0)  # un-premultiply
    out = np.concatenate([straight, alpha], axis=-1)
    return (out.clip(0.0, 1.0) * 255.0).round().astype(np.uint8)

__all__ = ["default_object_fraction", "foreground_mask", "load_image", "prepare_image"]
