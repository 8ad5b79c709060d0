"""Differentiable Gaussian rasterisation behind one function, with interchangeable backends.

:func:`rasterize` mirrors ``gsplat.rasterization()`` (same argument meaning, same outputs, the
``info`` keys gsplat's densification strategies read), so training code never branches on the
backend:

* ``"gsplat"``: gsplat's fused CUDA kernels (needs CUDA and the ``gsplat`` package);
* ``"torch"``: a tiled, pure-torch rasteriser that runs on any device and is differentiated by
  autograd. Per 16x16 tile it gathers the Gaussians whose screen-space bounding box overlaps
  the tile, in depth order, and alpha-composites them front to back for all tile pixels at
  once (vectorised; tiles are batched in chunks of similar size);
* ``"cpu"``: the same tiles and compositing rule in a compiled C++/OpenMP kernel
  (:mod:`diffusion4d.recon.cpu_kernel`, built at first use), one pixel at a time with early termination,
  forward and backward, and the projection compiled with it (:func:`project_gaussians_cpu`,
  hand-written backward; the torch projection when the cameras need gradients); CPU tensors only;
* ``"auto"``: gsplat when the tensors live on CUDA and gsplat imports, else ``cpu`` when the
  kernel builds (a C++ compiler is present), else ``torch``.

The brute-force twin used by tests lives in :mod:`diffusion4d.recon.testing`.

Compositing rule (3DGS / gsplat): ``alpha = min(alpha_max, o exp(-0.5 d^T Sigma^-1 d))``;
Gaussians with ``alpha < 1/255`` are skipped; a pixel stops at the Gaussian that would bring
its transmittance to ``<= 1e-4`` (that Gaussian is not composited);
``C = sum_i c_i alpha_i T_i + (1 - A) bg`` with ``A = 1 - prod_i (1 - alpha_i)``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import torch
from torch import Tensor

from diffusion4d.recon import cpu_kernel
from diffusion4d.recon.projection import ALPHA_THRESHOLD, Projected, camera_centers, project_gaussians, screen_radii
from diffusion4d.recon.sh import sh_to_rgb

Backend = Literal["auto", "gsplat", "torch", "cpu"]
BACKENDS: Tuple[str, ...] = ("auto", "gsplat", "torch", "cpu")
#: alpha clamp; gsplat's kernels use 0.999 (the original 3DGS used 0.99): we match gsplat so
#: the two backends agree.
ALPHA_MAX: float = 0.999
#: a pixel is finished once its transmittance would fall to this value
TRANSMITTANCE_MIN: float = 1e-4
#: default tile side of the torch backend: every tile evaluates all its pixels against all the
#: Gaussians overlapping it, so small tiles waste less work on pixels a Gaussian cannot reach
#: (measured on CPU: 4 px tiles are 2-5x faster than 16 px ones at 32-64 px)
TORCH_TILE_SIZE: int = 4
#: default tile side of the compiled ``cpu`` backend (per-pixel early termination: larger tiles
#: cost little per pixel, and fewer tiles make the tile lists cheaper to build)
CPU_TILE_SIZE: int = 16


def gsplat_available() -> bool:
    """True when ``gsplat`` imports and CUDA is usable (its rasteriser needs both)."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:  # pragma: no cover - depends on the install
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``gsplat`` on CUDA when available, else ``torch``; validates the name."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend == "auto":
        if device.type == "cuda" and gsplat_available():
            return "gsplat"
        return "cpu" if device.type == "cpu" and cpu_kernel.available() else "torch"
    if backend == "gsplat" and not (device.type == "cuda" and gsplat_available()):
        raise RuntimeError("backend 'gsplat' needs CUDA tensors and the gsplat package (pip install gsplat)")
    if backend == "cpu":
        if device.type != "cpu":
            raise RuntimeError("backend 'cpu' needs CPU tensors")
        if not cpu_kernel.available():
            raise RuntimeError(f"backend 'cpu' needs the compiled kernel, which is unavailable: {cpu_kernel.error()}")
    return backend


def resolve_colors(
    colors: Tensor, means: Tensor, viewmats: Tensor, sh_degree: Optional[int]
) -> Tensor:
    """Per-camera colours ``[C, N, D]`` from post-activation colours ``[N, D]``/``[C, N, D]``
    or SH coefficients ``[N, K, 3]``/``[C, N, K, 3]`` (when ``sh_degree`` is set)."""
    C, N = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        if colors.dim() == 2:
            return colors[None].expand(C, N, colors.shape[-1])
        if colors.dim() == 3 and colors.shape[:2] == (C, N):
            return colors
        raise ValueError(f"colors must be [N, D] or [C, N, D] when sh_degree is None, got {tuple(colors.shape)}")
    if colors.dim() == 3:
        colors = colors[None].expand(C, *colors.shape)
    if colors.dim() != 4 or colors.shape[:2] != (C, N) or colors.shape[-1] != 3:
        raise ValueError(f"SH colors must be [N, K, 3] or [C, N, K, 3], got {tuple(colors.shape)}")
    dirs = means[None] - camera_centers(viewmats)[:, None]  # [C, N, 3]
    return sh_to_rgb(sh_degree, dirs, colors)


def _background(background: Union[None, float, Tensor], C: int, D: int, ref: Tensor) -> Optional[Tensor]:
    if background is None:
        return None
    bg = torch.as_tensor(background, dtype=ref.dtype, device=ref.device)
    return bg.expand(C, D) if bg.dim() < 2 else bg


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] | [C, N, D] | SH [N, K, 3] | [C, N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    backend: Backend = "auto",
    sh_degree: Optional[int] = None,
    background: Union[None, float, Tensor] = None,  # scalar | [D] | [C, D]
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    tile_size: Optional[int] = None,
    chunk_elements: int = 1 << 22,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Render C views of N 3D Gaussians.

    Args:
        means: world-space centres. quats: rotations (w, x, y, z), normalised internally.
        scales: activated scales (``exp`` of the log-scales). opacities: activated, in [0, 1].
        colors: post-activation colours, or SH coefficients when ``sh_degree`` is given
            (``max(SH + 0.5, 0)``, directions from the camera centre to the Gaussian).
        viewmats: world-to-camera, OpenCV axes. Ks: pinhole intrinsics in pixels.
        background: colour composited behind the Gaussians (None: black / nothing).
        eps2d, near_plane: as gsplat. tile_size: tile side in pixels (default: 16 for gsplat,
            :data:`TORCH_TILE_SIZE` for torch, whose cost grows with tile area x Gaussians per
            tile). chunk_elements: the largest ``tiles x pixels x Gaussians`` batch the torch
            backend evaluates at once.

    Returns:
        ``images [C, H, W, D]``, ``alphas [C, H, W, 1]`` and ``info`` with (as gsplat, non-packed)
        ``means2d [C, N, 2]`` (keeps its grad when a strategy calls ``retain_grad``),
        ``radii [C, N, 2]`` int32, ``depths [C, N]``, ``conics [C, N, 3]``,
        ``opacities [C, N]``, ``gaussian_ids`` / ``camera_ids`` / ``batch_ids`` (None),
        ``width``, ``height``, ``n_cameras``, ``tile_size``, ``backend``.

    Example::

        >>> imgs, alphas, info = rasterize(means, quats, scales, opac, rgb, viewmats, Ks, 64, 64, backend="torch")
    """
    name = resolve_backend(backend, means.device)
    if tile_size is None:
        tile_size = {"gsplat": 16, "cpu": CPU_TILE_SIZE}.get(name, TORCH_TILE_SIZE)
    if name == "gsplat":
        return _rasterize_gsplat(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree, background, eps2d, near_plane, tile_size,
        )  # fmt: skip
    project = project_gaussians_cpu if name == "cpu" and not viewmats.requires_grad else project_gaussians
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane)
    cols = resolve_colors(colors, means, viewmats, sh_degree)  # [C, N, D]
    C, N = proj.depths.shape
    opac = opacities[None].expand(C, N)
    composite = composite_tiles_cpu if name == "cpu" else composite_tiles
    images, alphas = composite(
        proj.means2d, proj.conics, opac, cols, proj.radii, proj.depths, width, height,
        tile_size=tile_size, chunk_elements=chunk_elements,
    )  # fmt: skip
    bg = _background(background, C, cols.shape[-1], images)
    if bg is not None:
        images = images + (1.0 - alphas) * bg[:, None, None, :]
    info = {
        "batch_ids": None,
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": proj.radii,
        "means2d": proj.means2d,
        "depths": proj.depths,
        "conics": proj.conics,
        "opacities": opac,
        "width": width,
        "height": height,
        "n_cameras": C,
        "tile_size": tile_size,
        "backend": name,
    }
    return images, alphas, info


@torch.no_grad()
def tile_intersections(
    means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile_size: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Tile/Gaussian overlap lists, sorted by tile then depth.

    Returns ``flat_ids [M]`` (index into ``C * N``), ``offsets [C*th*tw]`` and ``counts [C*th*tw]``:
    the Gaussians of global tile ``t = c * th * tw + ty * tw + tx`` are
    ``flat_ids[offsets[t] : offsets[t] + counts[t]]``, nearest first.
    """
    C, N = depths.shape
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    device = means2d.device
    cam, gid = torch.nonzero((radii > 0).all(dim=-1), as_tuple=True)
    m = means2d.detach()[cam, gid]
    r = radii[cam, gid].to(m.dtype)
    x0 = torch.floor((m[:, 0] - r[:, 0]) / tile_size).clamp(0, tw - 1).long()
    x1 = torch.floor((m[:, 0] + r[:, 0]) / tile_size).clamp(0, tw - 1).long()
    y0 = torch.floor((m[:, 1] - r[:, 1]) / tile_size).clamp(0, th - 1).long()
    y1 = torch.floor((m[:, 1] + r[:, 1]) / tile_size).clamp(0, th - 1).long()
    nx = x1 - x0 + 1
    cnt = nx * (y1 - y0 + 1)
    owner = torch.repeat_interleave(torch.arange(len(cnt), device=device), cnt)
    local = torch.arange(len(owner), device=device) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    tx = x0[owner] + local % nx[owner]
    ty = y0[owner] + local // nx[owner]
    tile = cam[owner] * (th * tw) + ty * tw + tx
    # one sort on (tile, depth rank): the rank of each visible Gaussian's depth (stable, so ties
    # keep the Gaussian order) breaks ties within a tile; the keys are unique
    rank = torch.empty_like(cam)
    rank[torch.argsort(depths.detach()[cam, gid], stable=True)] = torch.arange(len(cam), device=device)
    key = tile * max(1, len(cam)) + rank[owner]
    order = torch.argsort(key)
    flat_ids = (cam * N + gid)[owner][order]
    counts = torch.bincount(tile[order], minlength=C * th * tw)
    offsets = torch.cumsum(counts, 0) - counts
    return flat_ids, offsets, counts


@torch.no_grad()
def tile_intersections_cpu(
    means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile_size: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`tile_intersections` in the compiled kernel (a counting pass instead of sorting every
    tile/Gaussian pair); same outputs, element for element."""
    return tuple(cpu_kernel.load().tile_lists(
        means2d.detach().contiguous(), radii.to(torch.int32).contiguous(), depths.detach().to(means2d.dtype).contiguous(),
        width, height, tile_size))  # fmt: skip


def _chunks(counts: Tensor, pixels: int, budget: int) -> List[Tuple[Tensor, int]]:
    """Group non-empty tiles (ascending size) into batches of at most ``budget`` elements."""
    nonempty = torch.nonzero(counts > 0, as_tuple=True)[0]
    if len(nonempty) == 0:
        return []
    sizes = counts[nonempty]
    order = torch.argsort(sizes, stable=True)
    tiles, sizes = nonempty[order], sizes[order].tolist()
    out, start = [], 0
    for i in range(1, len(sizes) + 1):
        if i == len(sizes) or (i + 1 - start) * pixels * sizes[i] > budget:
            out.append((tiles[start:i], int(sizes[i - 1])))
            start = i
    return out


class _CompositeChunk(torch.autograd.Function):
    """Front-to-back compositing of a batch of tiles, with a hand-written backward.

    Inputs: ``coef [T, K, 6]`` (per tile-Gaussian quadratic form of the exponent
    ``sigma - log(o)`` in the pixel offset from the tile centre), ``cols [T, K, D]``,
    ``feats [P, 6]`` (the monomials of every tile pixel), ``valid [T, K]`` (padding mask).
    Outputs ``rgb [T, P, D]`` and ``acc [T, P, 1]``.

    Forward (per pixel, Gaussians in depth order): ``alpha_i = min(alpha_max, exp(-expo_i))``,
    zeroed below 1/255 and from the Gaussian that would bring the transmittance to
    ``<= 1e-4`` on; ``T_i = prod_{j<i} (1 - alpha_j)``; ``rgb = sum_i alpha_i T_i c_i``;
    ``acc = 1 - prod_i (1 - alpha_i)``.

    Backward (what autograd of the forward gives, in fewer passes over ``[T, P, K]``):
    with ``g_i = c_i . dL/drgb`` and ``S_i = sum_{j>i} alpha_j T_j g_j``,
    ``dL/dalpha_i = T_i g_i + (dL/dacc T_final - S_i) / (1 - alpha_i)``,
    ``dL/dexpo_i = -alpha_i dL/dalpha_i`` where alpha is neither clamped nor dropped,
    ``dL/dcoef = dL/dexpo^T feats`` and ``dL/dc_i = sum_p alpha_i T_i dL/drgb``.
    The dense reference (autograd through the obvious loop) holds both equal in tests.
    """

    @staticmethod
    def forward(ctx, coef: Tensor, cols: Tensor, feats: Tensor, valid: Tensor, alpha_max: float, log_t_min: float):
        expo = torch.matmul(feats, coef.transpose(1, 2))  # [T, P, K] = sigma - log(o)
        raw = torch.exp(expo.neg_())
        del expo
        ok = (raw >= ALPHA_THRESHOLD) & valid[:, None, :]
        alpha = torch.where(ok, raw.clamp(max=alpha_max), 0.0)
        log_1m = torch.log1p(-alpha)
        keep = torch.cumsum(log_1m, dim=-1) > log_t_min  # stop at the Gaussian driving T to <= 1e-4
        alpha = alpha * keep
        log_1m = log_1m * keep
        log_trans = torch.cumsum(log_1m, dim=-1)  # inclusive
        trans = torch.exp(log_trans - log_1m)  # T_i (exclusive)
        weights = alpha * trans
        rgb = torch.matmul(weights, cols)  # [T, P, D]
        t_final = torch.exp(log_trans[..., -1:])
        grad_mask = ok & keep & (raw <= alpha_max)
        ctx.save_for_backward(cols, feats, alpha, trans, weights, grad_mask, t_final)
        return rgb, 1.0 - t_final

    @staticmethod
    def backward(ctx, grad_rgb: Tensor, grad_acc: Tensor):
        cols, feats, alpha, trans, weights, grad_mask, t_final = ctx.saved_tensors
        grad_cols = torch.matmul(weights.transpose(1, 2), grad_rgb) if ctx.needs_input_grad[1] else None
        grad_coef = None
        if ctx.needs_input_grad[0]:
            g = torch.matmul(grad_rgb, cols.transpose(1, 2))  # [T, P, K]: c_i . dL/drgb
            s = weights * g
            after = s.sum(-1, keepdim=True) - torch.cumsum(s, dim=-1)  # sum_{j>i}
            d_alpha = trans * g + (grad_acc * t_final - after) / (1.0 - alpha)
            d_expo = torch.where(grad_mask, -(alpha * d_alpha), 0.0)
            grad_coef = torch.matmul(d_expo.transpose(1, 2), feats)  # [T, K, 6]
        return grad_coef, grad_cols, None, None, None, None


def composite_tiles(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    colors: Tensor,  # [C, N, D]
    radii: Tensor,  # [C, N, 2]
    depths: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int = 16,
    chunk_elements: int = 1 << 22,
    alpha_max: float = ALPHA_MAX,
) -> Tuple[Tensor, Tensor]:
    """Front-to-back alpha compositing per tile (differentiable). Returns ``[C,H,W,D]``, ``[C,H,W,1]``."""
    C, N = depths.shape
    D = colors.shape[-1]
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    P = tile_size * tile_size
    flat_ids, offsets, counts = tile_intersections(means2d, radii, depths, width, height, tile_size)
    m_f, c_f = means2d.reshape(C * N, 2), conics.reshape(C * N, 3)
    o_f, col_f = opacities.reshape(C * N), colors.reshape(C * N, D)
    dev, dt = means2d.device, means2d.dtype
    local = torch.arange(tile_size, device=dev, dtype=dt) + 0.5  # pixel centres
    pix_y, pix_x = torch.meshgrid(local, local, indexing="ij")
    pix = torch.stack([pix_x.reshape(-1), pix_y.reshape(-1)], -1)  # [P, 2]

    # the exponent sigma - log(o) is a quadratic form in the pixel position relative to the tile
    # centre: [lx^2, ly^2, lx*ly, lx, ly, 1] . coef(g), one batched matmul for all pixel pairs
    loc = pix - tile_size / 2.0
    feats = torch.stack([loc[:, 0] ** 2, loc[:, 1] ** 2, loc[:, 0] * loc[:, 1], loc[:, 0], loc[:, 1], torch.ones_like(loc[:, 0])], -1)
    log_t_min = math.log(TRANSMITTANCE_MIN)
    done_tiles, rgb_parts, alpha_parts = [], [], []
    for tiles, kmax in _chunks(counts, P, chunk_elements):
        ar = torch.arange(kmax, device=dev)
        valid = ar[None] < counts[tiles][:, None]  # [T, K]
        idx = torch.where(valid, offsets[tiles][:, None] + ar[None], offsets[tiles][:, None])  # pad: tile's first
        g = flat_ids[idx]  # [T, K]
        txy = tiles % (th * tw)
        centre = torch.stack([(txy % tw) * tile_size, (txy // tw) * tile_size], -1).to(dt) + tile_size / 2.0
        mu = m_f[g] - centre[:, None]  # [T, K, 2] relative to the tile centre
        con = c_f[g]
        a, b, c = con[..., 0], con[..., 1], con[..., 2]
        mx, my = mu[..., 0], mu[..., 1]
        const = 0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my - torch.log(o_f[g].clamp_min(1e-10))
        coef = torch.stack([0.5 * a, 0.5 * c, b, -(a * mx + b * my), -(c * my + b * mx), const], -1)  # [T, K, 6]
        rgb_c, acc_c = _CompositeChunk.apply(coef, col_f[g], feats, valid, alpha_max, log_t_min)
        rgb_parts.append(rgb_c)  # [T, P, D]
        alpha_parts.append(acc_c)  # [T, P, 1]
        done_tiles.append(tiles)

    n_tiles = C * th * tw
    rgb = torch.zeros(n_tiles, P, D, device=dev, dtype=colors.dtype)
    acc = torch.zeros(n_tiles, P, 1, device=dev, dtype=dt)
    if done_tiles:
        index = torch.cat(done_tiles)
        rgb = rgb.index_copy(0, index, torch.cat(rgb_parts))
        acc = acc.index_copy(0, index, torch.cat(alpha_parts))

    def to_image(x: Tensor) -> Tensor:
        x = x.reshape(C, th, tw, tile_size, tile_size, x.shape[-1]).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(C, th * tile_size, tw * tile_size, x.shape[-1])[:, :height, :width]

    return to_image(rgb), to_image(acc)


class _ProjectCpu(torch.autograd.Function):
    """The compiled projection (recon/csrc/project_cpu.cpp) as an autograd function; cameras
    are constants (no gradient to ``viewmats`` or ``Ks``)."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, W, H, eps2d):
        means2d, depths, conics, cov2d = cpu_kernel.load().project_forward(means, quats, scales, viewmats, Ks, W, H, eps2d)
        ctx.save_for_backward(means, quats, scales, viewmats, Ks)
        ctx.dims = (W, H, eps2d)
        ctx.mark_non_differentiable(cov2d)
        return means2d, depths, conics, cov2d

    @staticmethod
    def backward(ctx, g_means2d, g_depths, g_conics, _g_cov2d):
        means, quats, scales, viewmats, Ks = ctx.saved_tensors
        W, H, eps2d = ctx.dims
        C, N = viewmats.shape[0], means.shape[0]
        zeros = lambda *shape: torch.zeros(shape, dtype=means.dtype)  # noqa: E731
        g_means2d = zeros(C, N, 2) if g_means2d is None else g_means2d.contiguous()
        g_depths = zeros(C, N) if g_depths is None else g_depths.contiguous()
        g_conics = zeros(C, N, 3) if g_conics is None else g_conics.contiguous()
        g_m, g_q, g_s = cpu_kernel.load().project_backward(
            means, quats, scales, viewmats, Ks, W, H, eps2d, g_means2d, g_depths, g_conics
        )
        return g_m, g_q, g_s, None, None, None, None, None


def project_gaussians_cpu(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    """:func:`~diffusion4d.recon.projection.project_gaussians` in the compiled kernel: same
    arguments and outputs, gradients to means, quats and scales (the cameras are constants).
    One fused loop per camera-Gaussian pair instead of some fifty small torch ops and their
    autograd nodes."""
    dt = means.dtype
    cams = (viewmats.detach().to(dt).contiguous(), Ks.detach().to(dt).contiguous())
    means2d, depths, conics, abc = _ProjectCpu.apply(
        means.contiguous(), quats.to(dt).contiguous(), scales.to(dt).contiguous(), *cams, width, height, float(eps2d)
    )
    a, b, c = abc.unbind(-1)
    radii = screen_radii(means2d, depths, a, c, opacities, width, height, near_plane, far_plane)
    cov2d = torch.stack([a, b, b, c], dim=-1).reshape(abc.shape[:-1] + (2, 2))
    return Projected(means2d, depths, conics, radii, cov2d)


class _CompositeCpu(torch.autograd.Function):
    """The compiled kernel (recon/csrc/composite_cpu.cpp) as an autograd function: inputs are
    flattened per camera-Gaussian ``[C*N, ...]``; the tile lists are constants."""

    @staticmethod
    def forward(ctx, means2d, conics, opac, cols, flat_ids, offsets, counts, C, W, H, tile, alpha_max):
        mod = cpu_kernel.load()
        args = (means2d, conics, opac, cols, flat_ids, offsets, counts, C, W, H, tile, alpha_max, ALPHA_THRESHOLD)
        rgb, acc, last = mod.composite_forward(*args, TRANSMITTANCE_MIN)
        ctx.save_for_backward(means2d, conics, opac, cols, flat_ids, offsets, counts, acc, last)
        ctx.dims = (C, W, H, tile, alpha_max)
        return rgb, acc

    @staticmethod
    def backward(ctx, grad_rgb, grad_acc):
        means2d, conics, opac, cols, flat_ids, offsets, counts, acc, last = ctx.saved_tensors
        C, W, H, tile, alpha_max = ctx.dims
        need_geo = any(ctx.needs_input_grad[:3])
        need_cols = ctx.needs_input_grad[3]
        if grad_rgb is None:
            grad_rgb = torch.zeros(C, H, W, cols.shape[-1], dtype=cols.dtype)
        if grad_acc is None:
            grad_acc = torch.zeros_like(acc)
        g_m, g_c, g_o, g_col = cpu_kernel.load().composite_backward(
            means2d, conics, opac, cols, flat_ids, offsets, counts, C, W, H, tile, alpha_max, ALPHA_THRESHOLD,
            acc, last, grad_rgb.contiguous(), grad_acc.contiguous(), need_geo, need_cols,
        )  # fmt: skip
        return g_m, g_c, g_o, g_col, None, None, None, None, None, None, None, None


def composite_tiles_cpu(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    colors: Tensor,  # [C, N, D]
    radii: Tensor,  # [C, N, 2]
    depths: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int = CPU_TILE_SIZE,
    chunk_elements: int = 0,  # unused (the kernel needs no batching); same signature as composite_tiles
    alpha_max: float = ALPHA_MAX,
) -> Tuple[Tensor, Tensor]:
    """:func:`composite_tiles` in the compiled kernel. Returns ``[C,H,W,D]``, ``[C,H,W,1]``."""
    C, N = depths.shape
    D = colors.shape[-1]
    flat_ids, offsets, counts = tile_intersections_cpu(means2d, radii, depths, width, height, tile_size)
    dt = colors.dtype
    return _CompositeCpu.apply(
        means2d.reshape(C * N, 2).to(dt).contiguous(), conics.reshape(C * N, 3).to(dt).contiguous(),
        opacities.reshape(C * N).to(dt).contiguous(), colors.reshape(C * N, D).contiguous(),
        flat_ids.contiguous(), offsets.contiguous(), counts.contiguous(), C, width, height, tile_size, alpha_max,
    )  # fmt: skip


def _rasterize_gsplat(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height,
    sh_degree, background, eps2d, near_plane, tile_size,
):  # fmt: skip
    from gsplat import rasterization

    C = viewmats.shape[0]
    D = 3 if sh_degree is not None else colors.shape[-1]
    bg = _background(background, C, D, means)
    images, alphas, info = rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, eps2d=eps2d, sh_degree=sh_degree, packed=False,
        tile_size=tile_size, backgrounds=bg,
    )  # fmt: skip
    info.setdefault("n_cameras", C)
    info["backend"] = "gsplat"
    return images, alphas, info
