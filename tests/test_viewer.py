"""viewer.html written by `diffusion4d export`: opens offline in headless Chromium, the model loads
and its animation plays (model-viewer's `loaded`, `currentTime` moving), not only the page."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def viewer_page(tmp_path_factory):
    from diffusion4d.recon.viewer import find_chromium, find_model_viewer_js

    if find_chromium() is None:
        pytest.skip("no Chromium (Debian package 'chromium')")
    try:
        find_model_viewer_js()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    from diffusion4d.recon.deformation import HexPlaneDeformation
    from diffusion4d.recon.gaussians import GaussianModel
    from diffusion4d.recon.mesh_export import export_glb

    g = torch.Generator().manual_seed(0)
    model = GaussianModel.from_points(torch.randn(400, 3, generator=g) * torch.tensor([0.15, 0.1, 0.25]),
                                      torch.rand(400, 3, generator=g), sh_degree=0, init_opacity=0.9)
    field = HexPlaneDeformation(resolutions=[8], time_resolution=4, features=4, hidden=8, rigid_knots=4)
    with torch.no_grad():
        model.params["scales"].fill_(float(np.log(0.03)))
        field.rigid.rotvecs.copy_(torch.tensor([[0, 0, 1.0], [0, 0, 2.0], [0, 0, 3.0]]))
    root = tmp_path_factory.mktemp("viewer")
    report = export_glb((model.requires_grad_(False), field.requires_grad_(False), np.linspace(0, 1, 8), 2.0),
                        root / "spin.glb", vertices=1500, grid=40, colour="kernel", viewer=True)
    return root, report


def test_viewer_is_standalone(viewer_page):
    root, report = viewer_page
    html = (root / "viewer.html").read_text()
    assert report["viewer"] == str(root / "viewer.html")
    assert 'src="data:model/gltf-binary;base64,' in html and "<model-viewer" in html and "camera-controls" in html
    assert 'id="scrub"' in html and 'id="play"' in html
    assert "http://" not in html.split("<script>", 1)[0] and "<script src=" not in html  # nothing fetched at view time


def test_viewer_loads_and_plays_in_headless_chromium(viewer_page):
    from diffusion4d.recon.viewer import check_viewer

    root, _ = viewer_page
    state = check_viewer(root / "viewer.html", wait_ms=1500)
    assert state["error"] is None and state["loaded"], state
    assert state["duration"] == pytest.approx(2.0, abs=0.01) and state["animations"], state
    assert not state["paused"] and state["t2"] != state["t1"], state  # the animation clock moves
