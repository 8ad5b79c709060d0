"""Rasteriser backends: tiled torch == dense reference (values and gradients), projection and
SH agree with gsplat's pure-torch functions, gsplat's DefaultStrategy runs on our ``info``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion4d.cameras import orbit_trajectory
from diffusion4d.recon.projection import covariance_3d, project_gaussians
from diffusion4d.recon import cpu_kernel
from diffusion4d.recon.rasterize import rasterize, resolve_backend, tile_intersections
from diffusion4d.recon.testing import rasterize_dense
from diffusion4d.recon.sh import eval_sh

try:
    from gsplat.cuda import _torch_impl as gs_ref
except Exception:  # pragma: no cover
    gs_ref = None

needs_gsplat_ref = pytest.mark.skipif(gs_ref is None, reason="gsplat not installed")
needs_cpu_kernel = pytest.mark.skipif(not cpu_kernel.available(), reason=f"compiled CPU kernel unavailable: {cpu_kernel.error()}")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat rasterization needs CUDA")


def make_scene(n=120, width=40, height=32, cams=2, dtype=torch.float64, sh_degree=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 1.0
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.exp(torch.rand(n, 3, generator=g, dtype=dtype) * 1.5 - 4.0)
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g, dtype=dtype)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g, dtype=dtype) * 0.3
    traj = orbit_trajectory("dynamic", cams, width=width, height=height, elevation=20.0, start_azimuth=10.0)
    viewmats = torch.as_tensor(np.linalg.inv(traj.c2w), dtype=dtype)
    Ks = torch.as_tensor(traj.K, dtype=dtype)
    return [means, quats, scales, opac, colors], viewmats, Ks


@pytest.mark.parametrize("sh_degree", [None, 2])
def test_tiled_matches_dense_reference_values_and_gradients(sh_degree):
    params, viewmats, Ks = make_scene(sh_degree=sh_degree)
    params = [p.clone().requires_grad_(True) for p in params]
    W, H = 40, 32
    bg = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    img_t, alpha_t, info = rasterize(*params, viewmats, Ks, W, H, backend="torch", sh_degree=sh_degree, background=bg)
    img_d, alpha_d = rasterize_dense(*params, viewmats, Ks, W, H, sh_degree=sh_degree, background=bg)
    assert img_t.shape == (2, H, W, 3) and alpha_t.shape == (2, H, W, 1)
    assert alpha_t.max() > 0.5, "scene should cover part of the image"
    torch.testing.assert_close(img_t, img_d, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha_t, alpha_d, rtol=1e-10, atol=1e-10)
    w = torch.rand(img_t.shape, dtype=torch.float64)
    grads_t = torch.autograd.grad((img_t * w).sum() + alpha_t.sum(), params)
    grads_d = torch.autograd.grad((img_d * w).sum() + alpha_d.sum(), params)
    for gt, gd in zip(grads_t, grads_d):
        assert gd.abs().sum() > 0
        torch.testing.assert_close(gt, gd, rtol=1e-8, atol=1e-10)


def test_tiled_chunking_does_not_change_the_result():
    params, viewmats, Ks = make_scene(n=200, width=48, height=48)
    a, _, _ = rasterize(*params, viewmats, Ks, 48, 48, backend="torch")
    b, _, _ = rasterize(*params, viewmats, Ks, 48, 48, backend="torch", chunk_elements=1)
    c, _, _ = rasterize(*params, viewmats, Ks, 48, 48, backend="torch", tile_size=8)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-12)


def test_opaque_gaussians_stop_compositing():
    # a stack of nearly opaque big Gaussians: the transmittance early stop must trigger
    n = 8
    means = torch.zeros(n, 3, dtype=torch.float64)
    means[:, 1] = torch.linspace(-0.3, 0.3, n, dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=torch.float64)
    scales = torch.full((n, 3), 0.2, dtype=torch.float64)
    opac = torch.full((n,), 0.995, dtype=torch.float64)
    colors = torch.rand(n, 3, dtype=torch.float64)
    _, viewmats, Ks = make_scene(cams=1)
    img_t, alpha_t, _ = rasterize(means, quats, scales, opac, colors, viewmats, Ks, 40, 32, backend="torch")
    img_d, alpha_d = rasterize_dense(means, quats, scales, opac, colors, viewmats, Ks, 40, 32)
    torch.testing.assert_close(img_t, img_d, rtol=1e-10, atol=1e-10)
    assert (1 - alpha_t).min() < 1e-2


def test_tile_lists_are_depth_sorted():
    params, viewmats, Ks = make_scene()
    proj = project_gaussians(params[0], params[1], params[2], params[3], viewmats, Ks, 40, 32)
    flat, offsets, counts = tile_intersections(proj.means2d, proj.radii, proj.depths, 40, 32, 16)
    depth = proj.depths.reshape(-1)
    for t in range(len(counts)):
        d = depth[flat[offsets[t] : offsets[t] + counts[t]]]
        assert bool((d[1:] >= d[:-1]).all())
    assert counts.sum() == len(flat) > 0


@needs_cpu_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_tile_lists_equal_the_torch_ones(dtype):
    """The kernel's counting-pass tile lists equal the sort-based reference element for element,
    with equal depths (ties keep the Gaussian order), culled Gaussians, boxes past the image edge
    and a tile size that does not divide the image."""
    from diffusion4d.recon.rasterize import tile_intersections_cpu

    g = torch.Generator().manual_seed(3)
    C, N, W, H = 3, 400, 53, 37
    means2d = (torch.rand(C, N, 2, generator=g, dtype=dtype) * torch.tensor([W + 20.0, H + 20.0], dtype=dtype) - 10.0)
    radii = torch.randint(0, 12, (C, N, 2), generator=g, dtype=torch.int32)
    radii[:, ::7, 1] = 0  # culled
    depths = torch.rand(C, N, generator=g, dtype=dtype)
    depths[:, ::5] = 0.5  # ties
    for tile in (4, 16):
        want = tile_intersections(means2d, radii, depths, W, H, tile)
        got = tile_intersections_cpu(means2d, radii, depths, W, H, tile)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype == torch.int64
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    empty = tile_intersections_cpu(means2d, torch.zeros_like(radii), depths, W, H, 16)
    assert len(empty[0]) == 0 and int(empty[2].sum()) == 0


@needs_gsplat_ref
def test_projection_matches_gsplat_torch_impl():
    (means, quats, scales, opac, _), viewmats, Ks = make_scene(n=64, width=64, height=48, cams=3)
    covars, _ = gs_ref._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    torch.testing.assert_close(covariance_3d(quats, scales), covars, rtol=1e-10, atol=1e-12)
    radii_g, m2_g, depth_g, conic_g, _ = gs_ref._fully_fused_projection(means, covars, viewmats, Ks, 64, 48)
    proj = project_gaussians(means, quats, scales, opac, viewmats, Ks, 64, 48)
    torch.testing.assert_close(proj.means2d, m2_g, rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(proj.depths, depth_g, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(proj.conics, conic_g, rtol=1e-8, atol=1e-10)
    # our radius is opacity-aware (as gsplat's CUDA kernel): never larger than the 3.33-sigma one
    assert bool((proj.radii <= radii_g).all())
    assert bool(((proj.radii > 0).all(-1) <= (radii_g > 0).all(-1)).all())


@needs_gsplat_ref
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_impl(degree):
    dirs = torch.randn(50, 3, dtype=torch.float64)
    coeffs = torch.randn(50, 16, 3, dtype=torch.float64)
    torch.testing.assert_close(eval_sh(degree, dirs, coeffs), gs_ref._spherical_harmonics(degree, dirs, coeffs))


@needs_gsplat_ref
def test_gsplat_default_strategy_runs_on_torch_backend_info():
    from gsplat.strategy import DefaultStrategy

    (means, quats, scales, opac, colors), viewmats, Ks = make_scene(n=80, dtype=torch.float32)
    params = torch.nn.ParameterDict(
        {
            "means": means,
            "quats": quats,
            "scales": torch.log(scales),
            "opacities": torch.logit(opac),
            "colors": colors,
        }
    )
    optimizers = {k: torch.optim.Adam([p], lr=1e-3) for k, p in params.items()}
    strategy = DefaultStrategy(refine_start_iter=0, refine_every=2, reset_every=1000, grow_grad2d=1e-9, prune_opa=0.06)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    n0 = len(params["means"])
    for step in range(3):
        img, _, info = rasterize(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            params["colors"], viewmats, Ks, 40, 32, backend="torch",
        )  # fmt: skip
        strategy.step_pre_backward(params, optimizers, state, step, info)
        img.mean().backward()
        assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
    assert len(params["means"]) != n0  # grew (every visible Gaussian has grad > 1e-9) and/or pruned


def test_backend_names():
    assert resolve_backend("auto", torch.device("cpu")) == ("cpu" if cpu_kernel.available() else "torch")
    with pytest.raises(ValueError, match="valid backends"):
        resolve_backend("vulkan", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            resolve_backend("gsplat", torch.device("cpu"))


@needs_cuda
def test_gsplat_backend_matches_torch_backend_on_cuda():
    params, viewmats, Ks = make_scene(n=300, width=64, height=48, cams=2, dtype=torch.float32, sh_degree=1)
    dev = torch.device("cuda")
    params = [p.to(dev).requires_grad_(True) for p in params]
    viewmats, Ks = viewmats.to(dev), Ks.to(dev)
    out_g = rasterize(*params, viewmats, Ks, 64, 48, backend="gsplat", sh_degree=1, background=1.0)
    out_t = rasterize(*params, viewmats, Ks, 64, 48, backend="torch", sh_degree=1, background=1.0)
    torch.testing.assert_close(out_g[0], out_t[0], rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(out_g[1], out_t[1], rtol=1e-3, atol=2e-3)
    assert set(["means2d", "radii", "width", "height", "n_cameras"]) <= set(out_g[2])
    grads_g = torch.autograd.grad(out_g[0].sum(), params)
    grads_t = torch.autograd.grad(out_t[0].sum(), params)
    for gg, gt in zip(grads_g, grads_t):
        torch.testing.assert_close(gg, gt, rtol=5e-2, atol=5e-3 * gt.abs().max().item() + 1e-6)


# --- the compiled CPU kernel ("cpu" backend) against the same dense reference ---------------


@needs_cpu_kernel
@pytest.mark.parametrize(
    "n,width,height,cams,sh_degree,tile",
    [(120, 40, 32, 2, None, None), (120, 40, 32, 2, 2, None), (300, 37, 29, 3, None, 8), (60, 16, 48, 1, 1, 16),
     (400, 64, 40, 2, 3, 4), (200, 33, 33, 2, None, 32)],
)  # fmt: skip
def test_cpu_kernel_matches_dense_reference_values_and_gradients(n, width, height, cams, sh_degree, tile):
    params, viewmats, Ks = make_scene(n=n, width=width, height=height, cams=cams, sh_degree=sh_degree, seed=n)
    params = [p.clone().requires_grad_(True) for p in params]
    bg = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    img_c, alpha_c, info = rasterize(*params, viewmats, Ks, width, height, backend="cpu", sh_degree=sh_degree,
                                     background=bg, tile_size=tile)  # fmt: skip
    img_d, alpha_d = rasterize_dense(*params, viewmats, Ks, width, height, sh_degree=sh_degree, background=bg)
    assert info["backend"] == "cpu" and img_c.shape == (cams, height, width, 3)
    assert alpha_c.max() > 0.3
    torch.testing.assert_close(img_c, img_d, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(alpha_c, alpha_d, rtol=1e-10, atol=1e-10)
    w = torch.rand(img_c.shape, dtype=torch.float64)
    wa = torch.rand(alpha_c.shape, dtype=torch.float64)
    grads_c = torch.autograd.grad((img_c * w).sum() + (alpha_c * wa).sum(), params)
    grads_d = torch.autograd.grad((img_d * w).sum() + (alpha_d * wa).sum(), params)
    for gc, gd in zip(grads_c, grads_d):
        assert gd.abs().sum() > 0
        torch.testing.assert_close(gc, gd, rtol=1e-8, atol=1e-10)


@needs_cpu_kernel
def test_cpu_kernel_opaque_stack_and_image_only_loss():
    n = 8
    means = torch.zeros(n, 3, dtype=torch.float64)
    means[:, 1] = torch.linspace(-0.3, 0.3, n, dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=torch.float64)
    scales = torch.full((n, 3), 0.2, dtype=torch.float64)
    opac = torch.full((n,), 0.995, dtype=torch.float64, requires_grad=True)
    colors = torch.rand(n, 3, dtype=torch.float64, requires_grad=True)
    _, viewmats, Ks = make_scene(cams=1)
    img_c, alpha_c, _ = rasterize(means, quats, scales, opac, colors, viewmats, Ks, 40, 32, backend="cpu")
    img_d, alpha_d = rasterize_dense(means, quats, scales, opac, colors, viewmats, Ks, 40, 32)
    torch.testing.assert_close(img_c, img_d, rtol=1e-10, atol=1e-10)
    assert (1 - alpha_c).min() < 1e-2
    # only the image in the loss (the alpha output gets no gradient)
    for gc, gd in zip(torch.autograd.grad(img_c.sum(), [opac, colors]), torch.autograd.grad(img_d.sum(), [opac, colors])):
        torch.testing.assert_close(gc, gd, rtol=1e-8, atol=1e-10)


@needs_cpu_kernel
def test_cpu_kernel_float32_matches_torch_backend_and_keeps_means2d_grad():
    params, viewmats, Ks = make_scene(n=500, width=64, height=48, cams=2, dtype=torch.float32, sh_degree=1)
    params = [p.clone().requires_grad_(True) for p in params]
    out_c = rasterize(*params, viewmats.float(), Ks.float(), 64, 48, backend="cpu", sh_degree=1, background=1.0)
    out_t = rasterize(*params, viewmats.float(), Ks.float(), 64, 48, backend="torch", sh_degree=1, background=1.0)
    torch.testing.assert_close(out_c[0], out_t[0], rtol=1e-4, atol=1e-5)
    out_c[2]["means2d"].retain_grad()
    out_c[0].sum().backward()
    assert out_c[2]["means2d"].grad is not None and out_c[2]["means2d"].grad.abs().sum() > 0


@needs_cpu_kernel
def test_compiled_projection_equals_the_torch_one_values_and_gradients():
    """project_gaussians_cpu against project_gaussians in float64: every output, and the
    gradients of all differentiable outputs (means2d, depths, conics) to means, quats and
    scales. The scene has unnormalised quaternions, points far outside the frustum (the
    Jacobian clamp), points behind the camera, and needle-thin Gaussians whose 2D
    covariance is nearly singular before the dilation."""
    from diffusion4d.recon.rasterize import project_gaussians_cpu

    params, viewmats, Ks = make_scene(n=300, width=48, height=40, cams=3, seed=11)
    means, quats, scales, opac, _ = params
    means = means.clone()
    means[:20] *= 12.0  # far off-screen on both sides: exercises the frustum clamp
    means[20:30, 2] += 8.0  # some end up behind the cameras or near them
    quats = quats * torch.linspace(0.2, 5.0, len(quats), dtype=torch.float64)[:, None]  # unnormalised
    scales = scales.clone()
    scales[30:60, 1:] = 1e-6  # needles
    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales)]
    want = project_gaussians(inputs[0], inputs[1], inputs[2], opac, viewmats, Ks, 48, 40)
    got = project_gaussians_cpu(inputs[0], inputs[1], inputs[2], opac, viewmats, Ks, 48, 40)
    for name in ("means2d", "depths", "conics", "cov2d"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-10, atol=1e-10, msg=name)
    torch.testing.assert_close(got.radii, want.radii, rtol=0, atol=0)
    assert int((want.radii[..., 0] == 0).sum()) > 0 < int((want.radii[..., 0] > 0).sum())
    g = torch.Generator().manual_seed(5)
    # weights of the conics scaled down: the needles' conics reach 1e1-1e2 and would swamp the rest
    w = [torch.randn(want.means2d.shape, generator=g, dtype=torch.float64),
         torch.randn(want.depths.shape, generator=g, dtype=torch.float64),
         torch.randn(want.conics.shape, generator=g, dtype=torch.float64) * 1e-2]  # fmt: skip
    for use in ([0], [1], [2], [0, 1, 2]):  # each output alone (the others get no gradient) and all
        outs_w = [(want.means2d, want.depths, want.conics)[i] for i in use]
        outs_g = [(got.means2d, got.depths, got.conics)[i] for i in use]
        loss_w = sum((o * w[i]).sum() for o, i in zip(outs_w, use))
        loss_g = sum((o * w[i]).sum() for o, i in zip(outs_g, use))
        gw = torch.autograd.grad(loss_w, inputs, retain_graph=True, allow_unused=True)
        gg = torch.autograd.grad(loss_g, inputs, retain_graph=True, allow_unused=True)
        for a, b, x in zip(gg, gw, inputs):  # means2d does not depend on quats/scales: None in torch
            a = torch.zeros_like(x) if a is None else a
            b = torch.zeros_like(x) if b is None else b
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9 * b.abs().max().item())
        assert gw[0].abs().sum() > 0


@needs_cpu_kernel
def test_rasterize_projects_in_torch_when_the_cameras_need_gradients():
    """Camera gradients (pose refinement) are not in the compiled projection: rasterize falls
    back to the torch projection for them and still composites in the kernel."""
    params, viewmats, Ks = make_scene(n=80, seed=2)
    viewmats = viewmats.clone().requires_grad_(True)
    img_c, _, _ = rasterize(*params, viewmats, Ks, 40, 32, backend="cpu")
    img_d, _ = rasterize_dense(*params, viewmats, Ks, 40, 32)
    torch.testing.assert_close(img_c, img_d, rtol=1e-10, atol=1e-10)
    (g_c,) = torch.autograd.grad(img_c.sum(), viewmats)
    (g_d,) = torch.autograd.grad(img_d.sum(), viewmats)
    assert g_d.abs().sum() > 0
    torch.testing.assert_close(g_c, g_d, rtol=1e-8, atol=1e-10)


def test_auto_falls_back_to_torch_without_the_kernel(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "_tried", True)
    monkeypatch.setattr(cpu_kernel, "_module", None)
    monkeypatch.setattr(cpu_kernel, "_error", "no C++ compiler (test)")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        resolve_backend("cpu", torch.device("cpu"))
    params, viewmats, Ks = make_scene(n=30)
    img, _, info = rasterize(*params, viewmats, Ks, 40, 32, backend="auto")
    assert info["backend"] == "torch" and torch.isfinite(img).all()


def test_separable_ssim_loss_equals_the_2d_window_form():
    """The fitting loss's SSIM (row + column convolutions of a stacked batch) against the direct
    2D-window form, values and gradients, on images smaller than the window too."""
    from diffusion4d.recon.losses import ssim, ssim_reference

    g = torch.Generator().manual_seed(0)
    for shape in ((2, 40, 33, 3), (1, 9, 7, 3)):
        a = torch.rand(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        b = torch.rand(*shape, generator=g, dtype=torch.float64)
        fast, ref = ssim(a, b), ssim_reference(a, b)
        torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
        (ga,) = torch.autograd.grad(fast, a)
        (gr,) = torch.autograd.grad(ref, a)
        torch.testing.assert_close(ga, gr, rtol=1e-9, atol=1e-12)
    same = torch.rand(1, 16, 16, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ssim(same, same), torch.tensor(1.0, dtype=torch.float64))


def test_the_kernel_builds_with_this_environments_ninja(monkeypatch):
    """torch builds with the first ninja on PATH; a process started without activating the environment
    would take the system's, whose build log the environment's ninja cannot read (a full rebuild each time
    the other one built last), or none. The build runs with the ``ninja`` package's first, then PATH is back."""
    import os

    import ninja

    from diffusion4d.recon import cpu_kernel

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with cpu_kernel._own_ninja_first():
        assert os.environ["PATH"].split(os.pathsep)[0] == ninja.BIN_DIR
        import shutil

        assert shutil.which("ninja") == os.path.join(ninja.BIN_DIR, "ninja")
    assert os.environ["PATH"] == "/usr/bin:/bin"
