"""Where the coarse stage's Gaussians start (``init.mode``): the box, or the views' visual hull."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from diffusion4d.cameras import orbit_trajectory, project as project_reference
from diffusion4d.recon.fit import Views
from diffusion4d.recon.gaussians import GaussianModel
from diffusion4d.recon.init_points import foreground_masks, hull_votes, initial_gaussians, visual_hull_points
from diffusion4d.recon.recon_config import load_recon_config

SIZE = 32
CENTRE, RADIUS, RED = np.array([0.1, -0.05, 0.0]), 0.15, np.array([0.9, 0.1, 0.1])


def _cameras(n=8, elevation=20.0):
    traj = orbit_trajectory("dynamic", n, elevation=elevation, width=SIZE, height=SIZE)
    return traj.c2w, traj.K


def _ball_views(n=8):
    """A red ball on white, seen by an orbit of ``n`` cameras: the pixel is red when its centre's ray
    passes within RADIUS of CENTRE."""
    c2w, K = _cameras(n)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    images = np.ones((n, SIZE, SIZE, 3))
    for v in range(n):
        rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(K[v]).T @ c2w[v][:3, :3].T
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        to_centre = CENTRE - c2w[v][:3, 3]
        along = rays @ to_centre
        miss = np.linalg.norm(to_centre - along[..., None] * rays, axis=-1)
        images[v][miss < RADIUS] = RED
    viewmats = np.linalg.inv(c2w)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return Views(t(images), t(viewmats), t(K), torch.zeros(n), SIZE, SIZE), c2w, K


def test_hull_votes_equal_a_loop_over_views_and_points_with_the_cameras_projection():
    views, c2w, K = _ball_views(6)
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(300, 3, generator=g) - 0.5) * 1.6  # some fall outside a frame
    images = torch.rand(6, SIZE, SIZE, 3, generator=g)
    masks = torch.rand(6, SIZE, SIZE, generator=g) > 0.3
    core = masks & (torch.rand(6, SIZE, SIZE, generator=g) > 0.5)
    seen, hits, colour = hull_votes(points, masks, core, images, views.viewmats, views.Ks)
    for n, p in enumerate(points.double().numpy()):
        on, on_core = [], []
        s = 0
        for v in range(6):
            u, w, z = project_reference(p[None], c2w[v], K[v])[0]
            if z <= 0 or not (0 <= u < SIZE and 0 <= w < SIZE):
                continue
            s += 1
            x, y = int(math.floor(u)), int(math.floor(w))
            if masks[v, y, x]:
                on.append(images[v, y, x])
                if core[v, y, x]:
                    on_core.append(images[v, y, x])
        assert int(seen[n]) == s and int(hits[n]) == len(on)
        expected = torch.stack(on_core).mean(0) if on_core else images[core].mean(0)
        torch.testing.assert_close(colour[n], expected, rtol=1e-5, atol=1e-5)


def test_hull_points_lie_near_the_object_and_take_its_colour():
    views, _, _ = _ball_views(8)
    points, colours = visual_hull_points(views.images, views.viewmats, views.Ks, 300, 1.0, 1.0, torch.Generator().manual_seed(0))
    assert points.shape == (300, 3) and colours.shape == (300, 3)
    dist = (points.double() - torch.as_tensor(CENTRE)).norm(dim=-1)
    # 8 views around the ball carve it to a little more than the ball: cones from 45 degrees apart,
    # each silhouette grown by a pixel (0.05 at this focal length and distance); the box's points lie
    # 0.5 from it on average
    assert float(dist.max()) < 2 * RADIUS and float(dist.mean()) < RADIUS + 0.05
    torch.testing.assert_close(colours, torch.as_tensor(RED, dtype=torch.float32).expand(300, 3))
    box = GaussianModel.random(300, 1.0, generator=torch.Generator().manual_seed(0)).means
    assert float((box.detach().double() - torch.as_tensor(CENTRE)).norm(dim=-1).mean()) > 0.4


def test_a_moving_part_is_kept_only_with_allowed_misses():
    """A point on the object in all views but one (a part that moved in that frame) is carved away
    with hull_misses 0 and kept with 1."""
    views, _, _ = _ball_views(8)
    images = views.images.clone()
    images[3] = 1.0  # frame 3 shows nothing
    args = (images, views.viewmats, views.Ks, 100, 1.0, 1.0)
    strict, _ = visual_hull_points(*args, torch.Generator().manual_seed(0), misses=0)
    loose, _ = visual_hull_points(*args, torch.Generator().manual_seed(0), misses=1)
    assert len(strict) == 0 and len(loose) == 100


def test_foreground_masks_use_the_silhouette_threshold_and_grow_by_a_pixel():
    img = torch.ones(1, 5, 5, 3)
    img[0, 2, 2] = torch.tensor([1.0, 0.9, 1.0])  # 0.1 from white: object
    img[0, 0, 0] = torch.tensor([0.97, 1.0, 1.0])  # 0.03 from white: background
    core = foreground_masks(img, 1.0, dilate=0)
    assert core.sum() == 1 and core[0, 2, 2]
    grown = foreground_masks(img, 1.0)
    assert grown.sum() == 9 and grown[0, 1:4, 1:4].all()


def test_box_mode_is_the_uniform_draw_and_visual_hull_falls_back_to_it_on_blank_views(caplog):
    views, _, _ = _ball_views(4)
    box_cfg = load_recon_config("test", ["init.num_points=50"])
    hull_cfg = load_recon_config("test", ["init.num_points=50", "init.mode=visual_hull"])
    ref = GaussianModel.random(50, box_cfg.init.extent, box_cfg.init.sh_degree, box_cfg.init.init_opacity,
                               torch.Generator().manual_seed(3), box_cfg.init.scale_factor)  # fmt: skip
    box = initial_gaussians(box_cfg, views, torch.Generator().manual_seed(3))
    for k in ref.params:
        torch.testing.assert_close(box.params[k], ref.params[k])
    hull = initial_gaussians(hull_cfg, views, torch.Generator().manual_seed(3))
    assert float((hull.means.detach().double() - torch.as_tensor(CENTRE)).norm(dim=-1).max()) < 2 * RADIUS
    blank = Views(torch.ones_like(views.images), views.viewmats, views.Ks, views.times, SIZE, SIZE)
    with caplog.at_level(logging.WARNING):
        fallback = initial_gaussians(hull_cfg, blank, torch.Generator().manual_seed(3))
    assert len(fallback) == 50 and "starting from the box" in caplog.text
    with pytest.raises(ValueError, match="hull_misses"):
        load_recon_config("test", ["init.hull_misses=-1"])
