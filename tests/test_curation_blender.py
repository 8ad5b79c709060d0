"""Fast renderer vs Blender (Debian's 3.4 or any other): silhouettes agree on every frame.

Skipped when no Blender is installed (CI installs Debian's: apt-get install blender python3-numpy).
"""

import shutil

import numpy as np
import pytest

from diffusion4d.data_curation import render_clip
from diffusion4d.data_curation.render.blender import BlenderNotFound, find_blender
from diffusion4d.cameras import orbit_trajectory

needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="no Blender installed")


def test_missing_blender_is_one_clear_error(tmp_path):
    with pytest.raises(BlenderNotFound, match="no Blender executable"):
        find_blender(str(tmp_path / "nowhere"))


@needs_blender
@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 4])  # rigid rotation (textured cube) and morph targets
def test_fast_and_blender_silhouettes_agree(tmp_path, index):
    from diffusion4d.data_curation.procedural import build_asset_glb, sample_asset_spec

    spec = sample_asset_spec(0, index)
    path = tmp_path / f"{spec.uid}.glb"
    path.write_bytes(build_asset_glb(spec))
    cams = orbit_trajectory("dynamic", 4, width=96, height=96, elevation=15.0, start_azimuth=30.0)
    fast = render_clip(path, cams)
    slow = render_clip(path, cams, renderer="blender", engine="workbench", timeout=300)
    assert slow.shape == fast.shape
    for i, (a, b) in enumerate(zip(fast[..., 3] > 127, slow[..., 3] > 127)):
        iou = (a & b).sum() / max(1, (a | b).sum())
        assert iou >= 0.95, f"frame {i}: IoU {iou:.3f}"
