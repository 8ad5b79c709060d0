"""Fast renderer against references: projected silhouettes, the shading formula, textures."""

import io

import numpy as np
import pytest
from PIL import Image

from diffusion4d.data_curation import render_clip
from diffusion4d.data_curation.gltf.craft import GltfCraft
from diffusion4d.data_curation.render import AssetRenderer
from diffusion4d.data_curation.render.fast import projection_from_K
from diffusion4d.data_curation.render.lighting import DEFAULT_RIG, shade, srgb_to_linear
from diffusion4d.cameras import CameraFrame, CameraTrajectory, GLTF_TO_WORLD, look_at, orbit_trajectory, project

W = H = 64


def _quad_asset(path, color=(0.6, 0.3, 0.9, 1.0), texture=None):
    """A 1x1 quad in the glTF XY plane (normal +Z_gltf = front, -Y world), plus a tiny far marker
    that fixes the normalisation: bounds [-0.5, 0.5]^2 x [0, 0] -> extent 1, centre 0."""
    c = GltfCraft()
    png = None
    if texture is not None:
        buf = io.BytesIO()
        Image.fromarray(texture).save(buf, format="PNG")
        png = buf.getvalue()
    mat = c.add_material(color, texture_png=png)
    pos = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], float)
    c.add_node(mesh=c.add_mesh(pos, [[0, 1, 2], [0, 2, 3]], normals=[[0, 0, 1]] * 4, uvs=uvs, material=mat))
    path.write_bytes(c.to_glb())
    return (GLTF_TO_WORLD[:3, :3] @ pos.T).T  # world corners (normalisation is the identity here)


def _traj(c2w, K, w=W, h=H):
    return CameraTrajectory(w, h, "custom", [CameraFrame(0, 0.0, 0.0, 0.0, 0.0, 2.0, c2w, K)])


def _polygon_mask(uv, w, h):
    """Pixels whose centre lies inside the convex polygon uv [4, 2] (any winding)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    pts = np.stack([xs, ys], -1)
    signs = []
    for a, b in zip(uv, np.roll(uv, -1, 0)):
        signs.append((b[0] - a[0]) * (pts[..., 1] - a[1]) - (b[1] - a[1]) * (pts[..., 0] - a[0]))
    s = np.stack(signs)
    return (s >= 0).all(0) | (s <= 0).all(0)


@pytest.mark.parametrize("principal_offset", [(0.0, 0.0), (6.0, -4.0)])
def test_quad_silhouette_matches_projection(tmp_path, principal_offset):
    corners = _quad_asset(tmp_path / "q.glb")
    eye = np.array([0.7, -1.8, 0.5])
    c2w = look_at(eye, target=(0.1, 0.0, 0.05))
    K = np.array([[70.0, 0, W / 2 + principal_offset[0]], [0, 70.0, H / 2 + principal_offset[1]], [0, 0, 1]])
    frame = render_clip(tmp_path / "q.glb", _traj(c2w, K))[0]
    uv = project(corners, c2w, K)[:, :2]
    expected = _polygon_mask(uv, W, H)
    got = frame[..., 3] >= 128
    assert expected.sum() > 200
    assert (got != expected).sum() <= 0.04 * expected.sum() + 8  # only edge pixels may differ


def test_centre_pixel_matches_shading_formula(tmp_path):
    color = (0.6, 0.3, 0.9, 1.0)
    _quad_asset(tmp_path / "q.glb", color=color)
    cams = orbit_trajectory("front", 1, width=W, height=H, elevation=10.0)
    frame = render_clip(tmp_path / "q.glb", cams)[0]
    px = frame[H // 2, W // 2]
    view_dir = cams.frames[0].c2w[:3, 3]
    expected = shade(np.array(color[:3]), np.array([0.0, -1.0, 0.0]), view_dir, DEFAULT_RIG) * 255
    assert px[3] == 255
    assert np.abs(px[:3].astype(float) - expected).max() <= 2.0
    # seen from behind, two-sided lighting flips the normal to +Y: the rim light dominates
    back = render_clip(tmp_path / "q.glb", orbit_trajectory("front", 1, start_azimuth=180, width=W, height=H))[0]
    expected_back = shade(np.array(color[:3]), np.array([0.0, 1.0, 0.0]), np.array([0, 2.0, 0]), DEFAULT_RIG) * 255
    assert np.abs(back[H // 2, W // 2, :3].astype(float) - expected_back).max() <= 2.0


def test_texture_sampling(tmp_path):
    tex = np.zeros((2, 2, 4), np.uint8)
    tex[..., 3] = 255
    tex[:, 0, 0] = 255  # left column red
    tex[:, 1, 2] = 255  # right column blue
    _quad_asset(tmp_path / "t.glb", color=(1, 1, 1, 1), texture=tex)
    cams = orbit_trajectory("front", 1, width=W, height=H)
    frame = render_clip(tmp_path / "t.glb", cams)[0]
    left, right = frame[H // 2, W // 2 - 8], frame[H // 2, W // 2 + 8]
    assert left[0] > 150 and left[2] < 30 and right[2] > 150 and right[0] < 30
    # the lit texel equals the shading formula with the texture's linear albedo
    exp = shade(srgb_to_linear(np.array([1.0, 0, 0])), np.array([0, -1.0, 0]), cams.frames[0].c2w[:3, 3]) * 255
    assert np.abs(left[:3].astype(float) - exp).max() <= 2.0


def test_projection_matrix_maps_like_project():
    K = np.array([[80.0, 0, 30.0], [0, 75.0, 36.0], [0, 0, 1]])
    c2w = look_at([1.0, -2.0, 0.7])
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, size=(10, 3))
    from diffusion4d.cameras import opencv_to_opengl

    clip = (projection_from_K(K, 64, 72) @ np.linalg.inv(opencv_to_opengl(c2w)) @ np.c_[pts, np.ones(10)].T).T
    ndc = clip[:, :2] / clip[:, 3:4]
    u, v = (ndc[:, 0] + 1) / 2 * 64, (1 - ndc[:, 1]) / 2 * 72
    assert np.allclose(np.stack([u, v], 1), project(pts, c2w, K)[:, :2], atol=1e-9)


def test_render_clip_contract_and_normalisation(tmp_path):
    c = GltfCraft()
    pos = np.array([[0, 0, 0], [40, 0, 0], [0, 40, 0]], float) + 100.0  # far away and large: normalised
    node = c.add_node(mesh=c.add_mesh(pos, [[0, 1, 2]]))
    c.add_animation([(node, "translation", [0, 1], [[0, 0, 0], [5, 0, 0]], "LINEAR")])
    (tmp_path / "n.glb").write_bytes(c.to_glb())
    cams = orbit_trajectory("dynamic", 4, width=32, height=32)
    frames = render_clip(tmp_path / "n.glb", cams)
    assert frames.shape == (4, 32, 32, 4) and frames.dtype == np.uint8
    assert frames[0, ..., 3].any() and frames[0, 0, 0, 3] == 0  # object visible, background transparent
    r = AssetRenderer(tmp_path / "n.glb")
    assert r.normalization.extent == pytest.approx(40.0) and r.duration == pytest.approx(1.0)
    r.close()
