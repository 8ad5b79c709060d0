"""Video files: mp4 (H.264), webm (VP9) and gif, through the ffmpeg that ships in the
``imageio-ffmpeg`` wheel (no system ffmpeg needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from diffusion4d.io.clip import frames_to_float


def _to_rgb_uint8(frames: np.ndarray, background: float = 1.0) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if frames.shape[-1] == 4:
        frames = (frames_to_float(frames, background) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(frames[..., :3])


def write_video(path: Union[str, os.PathLike], frames: np.ndarray, fps: float = 8.0, background: float = 1.0) -> Path:
    """Write ``frames`` [N, H, W, 3|4] (uint8, or float in [0, 1]) to ``path``.

    The container follows the suffix: ``.mp4`` (H.264, yuv420p, plays everywhere), ``.webm``
    (VP9, what browsers always decode), ``.gif`` (looping). RGBA is composited over ``background``.
    Odd frame sizes are padded by one pixel for the yuv420p codecs. Written to a temporary name
    and renamed, so a killed writer never leaves a broken file under ``path``.
    """
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = _to_rgb_uint8(frames, background)
    if rgb.ndim != 4 or len(rgb) == 0:
        raise ValueError(f"frames must be [N>0, H, W, C], got shape {np.shape(frames)}")
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in rgb]
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    elif suffix in (".mp4", ".webm"):
        pad_h, pad_w = rgb.shape[1] % 2, rgb.shape[2] % 2
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        codec = "libx264" if suffix == ".mp4" else "libvpx-vp9"
        extra = ["-crf", "18"] if suffix == ".mp4" else ["-b:v", "0", "-crf", "30", "-row-mt", "1"]
        writer = imageio.get_writer(
            tmp, fps=fps, codec=codec, pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error", output_params=extra
        )
        try:
            for f in rgb:
                writer.append_data(f)
        finally:
            writer.close()
    else:
        raise ValueError(f"unsupported video suffix {suffix!r}: use .mp4, .webm or .gif")
    os.replace(tmp, path)
    return path


def read_video(path: Union[str, os.PathLike]) -> np.ndarray:
    """Frames of a video file as uint8 [N, H, W, 3]."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        return np.stack([np.asarray(f)[..., :3] for f in reader])
    finally:
        reader.close()
