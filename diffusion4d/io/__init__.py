"""On-disk formats shared by every stage: rendered clips and the curation manifest."""

from diffusion4d.io.clip import (
    Clip,
    atomic_write_json,
    clip_dir,
    frame_path,
    frames_to_float,
    list_clip_dirs,
    read_cameras,
    read_clip,
    read_json,
    read_meta,
    write_clip,
    write_meta,
)
from diffusion4d.io.manifest import ManifestRecord, ManifestWriter, read_manifest
from diffusion4d.io.video import read_video, write_video

__all__ = [
    "Clip",
    "ManifestRecord",
    "ManifestWriter",
    "atomic_write_json",
    "clip_dir",
    "frame_path",
    "frames_to_float",
    "list_clip_dirs",
    "read_cameras",
    "read_clip",
    "read_json",
    "read_manifest",
    "read_meta",
    "write_clip",
    "write_meta",
    "read_video",
    "write_video",
]
