"""On-disk formats shared by every stage: rendered clips and the curation manifest, and the
safe-name gate for names that become paths (:mod:`diffusion4d.io.names`)."""

from diffusion4d.io.clip import (
    Clip,
    validate_cameras_json,
    validate_meta,
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
from diffusion4d.io.errors import InvalidInputError, MissingInputError
from diffusion4d.io.paths import check_output_dir, ensure_output_dir
from diffusion4d.io.names import SAFE_NAME_PATTERN, UnsafeNameError, is_safe_name, join_inside, make_safe_name, safe_name
from diffusion4d.io.manifest import ManifestRecord, ManifestWriter, read_manifest
from diffusion4d.io.video import read_video, write_video

__all__ = [
    "check_output_dir",
    "ensure_output_dir",
    "InvalidInputError",
    "MissingInputError",
    "validate_cameras_json",
    "validate_meta",
    "SAFE_NAME_PATTERN",
    "UnsafeNameError",
    "is_safe_name",
    "join_inside",
    "make_safe_name",
    "safe_name",
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
