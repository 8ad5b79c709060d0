"""A fitted 4D Gaussian model -> one animated glTF binary (``.glb``) any 3D tool opens.

:func:`export_glb` does, in order:

1. **Density field** of the canonical Gaussians on a regular grid (``grid`` cells along the
   longest side of their bounding box, cubic voxels, 3 empty cells of padding):
   ``D(x) = sum_k opacity_k * exp(-1/2 (x - mu_k)^T Sigma_k^-1 (x - mu_k))``, splatted Gaussian by
   Gaussian into the window of cells within 3 sigma of its longest axis (vectorised torch, in
   chunks of Gaussians sorted by window size; windows are capped at :data:`MAX_RADIUS_CELLS`).
   The same splat accumulates ``sum_k w_k(x) colour_k`` for the vertex colours.
2. **Marching cubes** (``skimage.measure.marching_cubes``) at ``iso`` (default
   :data:`DEFAULT_ISO`): the padded grid is zero on its border, so every surface is closed.
   Components with fewer than ``min_component_faces`` faces (floaters) are dropped.
3. **Simplification** to ``vertices`` (default 20 000) with ``fast_simplification`` (quadric
   decimation) when installed, else vertex clustering on a uniform grid (documented fallback).
   Neither keeps the surface closed everywhere (an edge collapse without the link-condition check
   leaves back-to-back "fin" triangles and edges shared by two sheets), so :func:`make_manifold`
   repairs the result: fins removed, such edges flipped in all sheets but one. The mesh is then
   watertight (every edge in exactly two triangles; the report's ``watertight``, by trimesh).
4. **Colour**: per vertex, the kernel-weighted mean of the Gaussians' DC colours
   (``SH_C0 * sh0 + 0.5`` at the first frame's time, so the colour head is included), read by
   trilinear interpolation from the two accumulated grids. The training videos are lit by the
   project's fixed light rig (:mod:`diffusion4d.data_curation.render.lighting`), so the Gaussians hold
   *lit* colours; with ``lighting="rig"`` (default) the exported base colour is that colour
   divided by the rig's shading at the vertex normal (``albedo = linear(rgb) / shading(n)``),
   so a renderer with the same rig (the curation renderer) reproduces the video, and other
   renderers light a plausible albedo. ``lighting="unlit"`` exports the lit colour as is and
   marks the material ``KHR_materials_unlit``.
5. **Motion**: the mesh vertices are treated as tiny Gaussians at those positions and moved by
   the model's own deformation code (:func:`diffusion4d.recon.deformation.apply_local` then the rigid
   motion). The field's *local* offsets at frame ``i``'s time become morph target ``i``
   (POSITION deltas, and NORMAL deltas of the re-computed smooth normals), and the weights
   animation makes target ``i`` weigh 1 at frame ``i``'s time (LINEAR keys, one-hot). The
   *rigid* motion (``field.rigid``) becomes the node's translation/rotation animation (about
   the rigid centre), so a spinning part is a rotating node, not huge per-vertex offsets.
   Key times are in seconds: ``time * duration_seconds`` of the clip's ``cameras.json``.
6. **Frames**: vertices are written in glTF's frame (Y up), ``p_gltf = GLTF_TO_WORLD^-1 p_world``,
   the inverse of what the project's loader applies, so loading the export gives back the
   Gaussians' world (Z up, front -Y). Deltas are stored as normalised 16-bit (positions) and
   8-bit (normals) integers (``KHR_mesh_quantization``) in sparse accessors (only vertices that
   move more than ``sparse_eps``), which keeps a 24-frame, 20k-vertex export under 5 MB.

The curation renderer normalises an asset into the unit box by its bounds at t0. The
Gaussians already live in that box (they were fitted to curated clips), so the export is *not*
rescaled; :func:`export_glb` reports the normalisation curation would apply
(``curate_normalization``) and :mod:`diffusion4d.recon.glb_roundtrip` renders with the identity instead.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from diffusion4d.cameras import GLTF_TO_WORLD
from diffusion4d.errors import UserError
from diffusion4d.logging_utils import get_logger

log = get_logger(__name__)

DEFAULT_ISO = 0.2  #: iso level of the opacity-weighted kernel sum (see docs/export.md for how it was chosen)
DEFAULT_VERTICES = 20000
DEFAULT_GRID = 128
MAX_RADIUS_CELLS = 16  #: splat window cap (cells), for very large Gaussians
SIGMAS = 3.0  #: splat window radius in standard deviations
WORLD_TO_GLTF = np.linalg.inv(GLTF_TO_WORLD)[:3, :3]
_G2W = GLTF_TO_WORLD[:3, :3]


# ----------------------------------------------------------------------------- input
@dataclass
class Model4D:
    """What the exporter needs: the model, its deformation field, frame times and duration."""

    model: "object"  # diffusion4d.recon.gaussians.GaussianModel
    field: "object"  # diffusion4d.recon.deformation.HexPlaneDeformation | None
    times: np.ndarray  # [T] normalised frame times in [0, 1]
    duration_seconds: float
    source: str = ""
    views_dir: Optional[Path] = None  # a clip of the model's own renders (``<recon>/dynamic``), for colours


def load_model_4d(source: Union[str, Path, Model4D, tuple]) -> Model4D:
    """A reconstruction output folder (``gaussians_4d.json`` + ``.safetensors`` from
    ``diffusion4d reconstruct``), or ``(model, field[, times[, duration_seconds]])``, or a :class:`Model4D`.

    Times: the folder's ``dynamic/cameras.json`` (the re-rendered clip, same cameras and times as
    the input clip) gives ``time`` and ``duration_seconds``; without it, ``gaussians_4d.json``'s
    ``times`` and a duration of 1 s."""
    if isinstance(source, Model4D):
        return source
    if isinstance(source, tuple):
        model, field = source[0], source[1]
        times = np.asarray(source[2] if len(source) > 2 else [0.0], dtype=np.float64)
        duration = float(source[3]) if len(source) > 3 else 1.0
        return Model4D(model, field, times, duration, "objects")
    from diffusion4d.recon.export import load_4d

    folder = Path(source)
    if not (folder / "gaussians_4d.json").is_file():
        raise UserError(f"{folder} holds no gaussians_4d.json: pass the output folder of `diffusion4d reconstruct`")
    try:
        model, field, info = load_4d(folder)
    except Exception as err:  # corrupt / truncated files
        raise UserError(f"{folder}: cannot load the 4D Gaussians ({type(err).__name__}: {err})") from None
    times = np.asarray(info.get("times") or [0.0], dtype=np.float64)
    duration = 1.0
    cams = folder / "dynamic" / "cameras.json"
    if cams.is_file():
        from diffusion4d.io import read_cameras

        cameras = read_cameras(folder / "dynamic")
        times = np.asarray(cameras.times, dtype=np.float64)
        duration = float(cameras.duration_seconds or 0.0)
        if duration <= 0:
            secs = np.asarray([f.time_seconds for f in cameras.frames], dtype=np.float64)
            duration = float(secs.max() / times.max()) if times.max() > 0 and secs.max() > 0 else 1.0
    model.requires_grad_(False)
    if field is not None:
        field.requires_grad_(False)
    return Model4D(model, field, times, duration, str(folder), folder / "dynamic" if cams.is_file() else None)


# ----------------------------------------------------------------------------- density grid
def _covariance_inverse(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    from diffusion4d.recon.projection import quat_to_rotmat

    R = quat_to_rotmat(torch.nn.functional.normalize(quats, dim=-1))  # [N, 3, 3]
    inv_s2 = 1.0 / scales.clamp_min(1e-6).pow(2)
    return (R * inv_s2[:, None, :]) @ R.transpose(1, 2)


@dataclass
class DensityGrid:
    density: np.ndarray  # [X, Y, Z] float32: sum of opacity-weighted kernels
    colour: np.ndarray  # [X, Y, Z, 3] float32: sum of kernel-weighted colours
    origin: np.ndarray  # [3] world position of cell (0, 0, 0)
    voxel: float


def density_grid(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                 colours: torch.Tensor, grid: int = DEFAULT_GRID, chunk_cells: int = 1 << 20,
                 bounds: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> DensityGrid:
    """Splat activated Gaussians (``scales`` as standard deviations, ``opacities`` in [0, 1],
    ``colours`` ``[N, 3]``) into a density grid with ``grid`` cells along the longest side."""
    means, quats, scales = means.detach().float().cpu(), quats.detach().float().cpu(), scales.detach().float().cpu()
    opacities, colours = opacities.detach().float().cpu().reshape(-1), colours.detach().float().cpu()
    if bounds is None:
        keep = opacities > 0.05
        pts = means[keep] if keep.any() else means
        radius = SIGMAS * scales[keep].amax(-1) if keep.any() else SIGMAS * scales.amax(-1)
        lo = (pts - radius[:, None]).amin(0).clamp(-1.5, 1.5).numpy()
        hi = (pts + radius[:, None]).amax(0).clamp(-1.5, 1.5).numpy()
    else:
        lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    voxel = float(np.max(hi - lo)) / max(grid - 1, 1)
    pad = 3
    origin = lo - pad * voxel
    dims = np.ceil((hi - lo) / voxel).astype(int) + 1 + 2 * pad
    X, Y, Z = (int(d) for d in dims)
    density = torch.zeros(X * Y * Z)
    colour = torch.zeros(X * Y * Z, 3)
    cinv = _covariance_inverse(quats, scales)
    r_cells = torch.ceil(SIGMAS * scales.amax(-1) / voxel).clamp(1, MAX_RADIUS_CELLS).long()
    origin_t = torch.as_tensor(origin, dtype=torch.float32)
    centre_cell = torch.round((means - origin_t) / voxel).long()
    dims_t = torch.tensor([X, Y, Z])
    for r in torch.unique(r_cells).tolist():  # Gaussians grouped by window radius (cells)
        members = (r_cells == r).nonzero(as_tuple=True)[0]
        side = torch.arange(-r, r + 1)
        offs = torch.stack(torch.meshgrid(side, side, side, indexing="ij"), -1).reshape(-1, 3)  # [W, 3]
        offs = offs[offs.pow(2).sum(-1) <= (r + 1) ** 2]  # the ball that holds the 3-sigma ellipsoid
        offs_f = offs.float() * voxel
        per = max(1, chunk_cells // offs.shape[0])
        for s in range(0, len(members), per):
            idx = members[s : s + per]
            cells = centre_cell[idx][:, None, :] + offs[None]  # [B, W, 3]
            d = (origin_t + centre_cell[idx].float() * voxel - means[idx])[:, None, :] + offs_f[None]
            A = cinv[idx][:, None]  # [B, 1, 3, 3]
            d0, d1, d2 = d.unbind(-1)
            q = (A[..., 0, 0] * d0 * d0 + A[..., 1, 1] * d1 * d1 + A[..., 2, 2] * d2 * d2
                 + 2 * (A[..., 0, 1] * d0 * d1 + A[..., 0, 2] * d0 * d2 + A[..., 1, 2] * d1 * d2))  # Mahalanobis^2 [B, W]
            keep = q < (SIGMAS + 1) ** 2
            keep &= ((cells >= 0) & (cells < dims_t)).all(-1)
            b_idx, w_idx = keep.nonzero(as_tuple=True)
            c = cells[b_idx, w_idx]
            w = opacities[idx][b_idx] * torch.exp(-0.5 * q[b_idx, w_idx])
            flat = (c[:, 0] * Y + c[:, 1]) * Z + c[:, 2]
            density.index_add_(0, flat, w)
            colour.index_add_(0, flat, w[:, None] * colours[idx][b_idx])
    return DensityGrid(density.reshape(X, Y, Z).numpy(), colour.reshape(X, Y, Z, 3).numpy(), origin, voxel)


# ----------------------------------------------------------------------------- mesh
def _remove_small_components(verts: np.ndarray, faces: np.ndarray, min_faces: int) -> Tuple[np.ndarray, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return verts, faces
    n = len(verts)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    _, label = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
    face_label = label[faces[:, 0]]
    counts = np.bincount(face_label, minlength=label.max() + 1)
    keep_faces = counts[face_label] >= min(min_faces, counts.max())
    faces = faces[keep_faces]
    used = np.unique(faces)
    remap = np.full(n, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return verts[used], remap[faces]


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth vertex normals [V, 3] (unit; +Z where undefined)."""
    p = verts[faces]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    out = np.zeros_like(verts)
    for k in range(3):
        np.add.at(out, faces[:, k], fn)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norm > 1e-20, out / np.maximum(norm, 1e-20), np.array([0.0, 0.0, 1.0]))
    return out


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    p = verts[faces]
    return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)


def simplify(verts: np.ndarray, faces: np.ndarray, target_vertices: int) -> Tuple[np.ndarray, np.ndarray, str]:
    """Reduce to about ``target_vertices`` vertices: quadric decimation (``fast_simplification``)
    when installed, else vertex clustering. Returns (verts, faces, method)."""
    if len(verts) <= target_vertices:
        return verts, faces, "none"
    try:
        import fast_simplification
    except ImportError:
        fast_simplification = None
    if fast_simplification is not None:
        reduction = 1.0 - target_vertices / len(verts)
        v, f = fast_simplification.simplify(verts.astype(np.float32), faces.astype(np.int32), target_reduction=float(reduction))
        return v.astype(np.float64), f.astype(np.int64), "fast_simplification"
    return (*cluster_vertices(verts, faces, target_vertices), "vertex_clustering")


def cluster_vertices(verts: np.ndarray, faces: np.ndarray, target_vertices: int) -> Tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: merge the vertices of each cell of a uniform grid (cell size chosen
    by bisection so that about ``target_vertices`` cells are occupied) into their mean, drop
    the triangles that collapse. Not topology-preserving (:func:`make_manifold` repairs the
    result); the fallback when ``fast_simplification`` is missing."""
    lo, hi = verts.min(0), verts.max(0)
    size_lo, size_hi = 1e-6, float(np.max(hi - lo))
    for _ in range(30):
        size = math.sqrt(size_lo * size_hi)
        keys = np.floor((verts - lo) / size).astype(np.int64)
        n = len(np.unique(keys, axis=0))
        if n > target_vertices:
            size_lo = size
        else:
            size_hi = size
    keys = np.floor((verts - lo) / size_hi).astype(np.int64)
    _, label = np.unique(keys, axis=0, return_inverse=True)
    label = label.reshape(-1)
    counts = np.bincount(label)
    new_v = np.zeros((len(counts), 3))
    for k in range(3):
        new_v[:, k] = np.bincount(label, weights=verts[:, k]) / counts
    f = label[faces]
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[ok]  # duplicated and back-to-back triangles stay: make_manifold pairs them off
    used = np.unique(f)
    remap = np.full(len(new_v), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return new_v[used], remap[f]


def _cyclic_min_first(faces: np.ndarray) -> np.ndarray:
    """Each triangle rotated so that its smallest index comes first (orientation kept)."""
    r = np.argmin(faces, axis=1)
    return np.take_along_axis(faces, (r[:, None] + np.arange(3)[None]) % 3, 1)


def _drop_duplicate_triangles(faces: np.ndarray, stats: dict) -> np.ndarray:
    """Triangles on the same three vertices: back-to-back pairs (a zero-volume "fin", which puts
    two triangles too many on each of its edges) are removed both; same-orientation copies are
    kept once."""
    srt = np.sort(faces, 1)
    _, group, count = np.unique(srt, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    if not (count > 1).any():
        return faces
    positive = _cyclic_min_first(faces)[:, 1] == srt[:, 1]  # (min, mid, max) order: one of the two orientations
    drop = np.zeros(len(faces), dtype=bool)
    for g in np.nonzero(count > 1)[0]:
        members = np.nonzero(group == g)[0]
        pos, neg = members[positive[members]].tolist(), members[~positive[members]].tolist()
        n = min(len(pos), len(neg))
        drop[pos[:n] + neg[:n]] = True
        rest = pos[n:] + neg[n:]
        drop[rest[1:]] = True
        stats["fins"] += n
        stats["duplicates"] += max(len(rest) - 1, 0)
    return faces[~drop]


def _sheet_pairings(verts: np.ndarray, a: int, b: int, fwd: list, bwd: list, opposite) -> list:
    """Ways to pair the triangles around the edge ``a-b`` into sheets (forward triangle holding
    ``a->b``, backward holding ``b->a``): the two pairings of neighbours in angular order around
    the edge first, then (for up to 3 sheets) every other pairing."""
    import itertools

    u = verts[b] - verts[a]
    u = u / max(float(np.linalg.norm(u)), 1e-30)
    e1 = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)

    def angle(f: int) -> float:
        w = verts[opposite(f)] - verts[a]
        return float(np.arctan2(w @ e2, w @ e1))

    ring = sorted([(angle(f), 0, f) for f in fwd] + [(angle(f), 1, f) for f in bwd])
    n = len(ring)
    out = []
    for shift in (0, 1):
        r = ring[shift:] + ring[:shift]
        pairs = [(r[k + 1][2], r[k][2]) for k in range(0, n - 1, 2) if r[k][1] == 1 and r[k + 1][1] == 0]
        if len(pairs) == len(fwd) and pairs not in out:
            out.append(pairs)
    if len(fwd) <= 3:
        for perm in itertools.permutations(bwd):
            pairs = list(zip(fwd, perm))
            if pairs not in out:
                out.append(pairs)
    return out


def make_manifold(verts: np.ndarray, faces: np.ndarray, max_passes: int = 10) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Repair what edge-collapse decimation breaks in a closed, consistently oriented mesh, so that
    every edge has exactly two triangles (watertight) again.

    Quadric decimation (``fast_simplification``) collapses edges without checking the link
    condition: where a collapse squeezes a thin tunnel or a sliver, it leaves a *fin* (two
    back-to-back triangles on the same three vertices) or two sheets that share one edge
    (an edge with 4 triangles). Per pass: triangles with a repeated vertex are dropped, fins are
    removed, and on every edge with more than two triangles the triangles are paired into sheets
    (one triangle holding ``a->b`` with one holding ``b->a``) and the edge is flipped in all
    sheets but one (the quad ``a, y, b, x`` re-triangulated along ``x-y``); a sheet whose two
    triangles share their third vertex is a fin and removed; a flip whose new edge already exists
    is not done (another pairing or another kept sheet is tried). Unreferenced vertices are dropped
    at the end; the others keep their order. Returns (verts, faces, stats)."""
    faces = np.asarray(faces, dtype=np.int64)
    stats = {"degenerate": 0, "fins": 0, "duplicates": 0, "flips": 0, "passes": 0}
    V = len(verts)
    for p in range(max_passes):
        stats["passes"] = p + 1
        n_before = len(faces)
        ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
        stats["degenerate"] += int((~ok).sum())
        faces = _drop_duplicate_triangles(faces[ok], stats)
        changed = len(faces) != n_before
        half = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)  # half-edge h belongs to triangle h // 3
        und = np.sort(half, 1)
        keys, inverse, count = np.unique(und[:, 0] * V + und[:, 1], return_inverse=True, return_counts=True)
        bad = np.nonzero(count > 2)[0]
        if len(bad):
            edge_set = set(keys.tolist())
            by_edge = np.argsort(inverse.reshape(-1), kind="stable")
            starts = np.concatenate([[0], np.cumsum(count)])
            touched = np.zeros(len(faces), dtype=bool)
            faces = faces.copy()
            for e in bad:
                hs = by_edge[starts[e] : starts[e + 1]]
                if touched[hs // 3].any():  # a neighbour was changed in this pass: next pass
                    continue
                a, b = (int(x) for x in und[hs[0]])
                fwd = [int(h // 3) for h in hs if half[h, 0] == a]
                bwd = [int(h // 3) for h in hs if half[h, 0] == b]
                opposite = lambda f: int(faces[f].sum()) - a - b  # noqa: E731
                plan = None
                if len(fwd) == len(bwd):
                    for pairs in _sheet_pairings(verts, a, b, fwd, bwd, opposite):
                        for keep in range(len(pairs)):
                            acts, new_edges = [], set()
                            for k, (ff, fb) in enumerate(pairs):
                                if k == keep:
                                    continue
                                x, y = opposite(ff), opposite(fb)
                                key = min(x, y) * V + max(x, y)
                                if x != y and (key in edge_set or key in new_edges):
                                    break
                                if x != y:
                                    new_edges.add(key)
                                acts.append((ff, fb, x, y))
                            else:
                                plan = (acts, new_edges)
                                break
                        if plan is not None:
                            break
                if plan is None:
                    continue
                for ff, fb, x, y in plan[0]:
                    touched[[ff, fb]] = True
                    if x == y:  # a fin: both triangles made degenerate, dropped next pass
                        faces[ff] = faces[fb] = a
                        stats["fins"] += 1
                    else:
                        faces[ff], faces[fb] = (a, y, x), (y, b, x)
                        stats["flips"] += 1
                    changed = True
                edge_set |= plan[1]
        if not changed:
            break
    used = np.zeros(V, dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    faces = remap[faces]
    stats.update({f"{k}_edges_left": v for k, v in edge_counts(faces).items()})
    return verts[used], faces, stats


def edge_counts(faces: np.ndarray) -> dict:
    """Edges of a triangle mesh with one triangle (``boundary``) and with more than two (``non_manifold``);
    a closed 2-manifold edge graph (trimesh's ``is_watertight``) has neither."""
    und = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1)
    _, count = np.unique(und, axis=0, return_counts=True)
    return {"boundary": int((count == 1).sum()), "non_manifold": int((count > 2).sum())}


def _trilinear(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    if values.ndim == 3:
        return map_coordinates(values, coords.T, order=1, mode="nearest")
    return np.stack([map_coordinates(values[..., c], coords.T, order=1, mode="nearest") for c in range(values.shape[-1])], -1)


def rig_shading(normals: np.ndarray) -> np.ndarray:
    """The curation renderer's light rig at world normals ``[V, 3]`` -> shading factor ``[V]``."""
    from diffusion4d.data_curation.render.lighting import DEFAULT_RIG

    dirs, ints = DEFAULT_RIG.arrays()
    return DEFAULT_RIG.ambient + np.clip(normals @ dirs.T.astype(np.float64), 0.0, None) @ ints.astype(np.float64)


@dataclass
class CanonicalMesh:
    verts: np.ndarray  # [V, 3] world (Z up)
    faces: np.ndarray  # [F, 3] int64, counter-clockwise seen from outside
    normals: np.ndarray  # [V, 3]
    colours_srgb: np.ndarray  # [V, 3] kernel-weighted Gaussian colour (lit, sRGB)
    stats: dict


def extract_mesh(gaussians: Dict[str, torch.Tensor], colours: torch.Tensor, grid: int = DEFAULT_GRID,
                 iso: float = DEFAULT_ISO, vertices: int = DEFAULT_VERTICES, min_component_faces: int = 32) -> CanonicalMesh:
    """Density grid -> marching cubes -> small components removed -> simplified -> coloured."""
    from skimage.measure import marching_cubes

    t0 = time.perf_counter()
    g = density_grid(gaussians["means"], gaussians["quats"], gaussians["scales"], gaussians["opacities"], colours, grid)
    t_grid = time.perf_counter() - t0
    if not float(g.density.max()) > iso:
        raise UserError(f"the Gaussians' density never reaches the iso level {iso} (max {float(g.density.max()):.3g}): nothing to mesh")
    verts, faces, _, _ = marching_cubes(g.density, level=iso, spacing=(g.voxel,) * 3, allow_degenerate=False)
    verts = verts.astype(np.float64) + g.origin
    faces = faces.astype(np.int64)
    raw_vertices = len(verts)
    verts, faces = _remove_small_components(verts, faces, min_component_faces)
    verts, faces, method = simplify(verts, faces, vertices)
    verts, faces, repair = make_manifold(verts, faces)  # decimation breaks the closed surface in places
    verts, faces = _remove_small_components(verts, faces, 4)
    if repair["non_manifold_edges_left"] or repair["boundary_edges_left"]:
        log.warning("mesh not closed after the repair: %d edges with more than two triangles, %d with one",
                    repair["non_manifold_edges_left"], repair["boundary_edges_left"])
    if _signed_volume(verts, faces) < 0:  # outward-facing triangles (counter-clockwise from outside)
        faces = faces[:, ::-1].copy()
    normals = vertex_normals(verts, faces)
    coords = (verts - g.origin) / g.voxel
    wsum = _trilinear(g.density, coords)
    csum = _trilinear(g.colour, coords)
    colours_srgb = np.clip(csum / np.maximum(wsum, 1e-8)[:, None], 0.0, 1.0)
    stats = {"grid_shape": list(g.density.shape), "voxel": g.voxel, "iso": iso, "density_max": float(g.density.max()),
             "marching_cubes_vertices": raw_vertices, "vertices": len(verts), "faces": len(faces),
             "simplification": method, "repair": repair, "seconds_grid": t_grid}
    return CanonicalMesh(verts, faces, normals, colours_srgb, stats)


# ----------------------------------------------------------------------------- motion
def _vertex_gaussians(verts: torch.Tensor, sh_bases: int) -> Dict[str, torch.Tensor]:
    n = verts.shape[0]
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    return {"means": verts, "quats": quats, "scales": torch.full((n, 3), 1e-4), "opacities": torch.ones(n),
            "sh": torch.zeros(n, sh_bases, 3)}


def _rotmat_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_quat()  # x, y, z, w


@torch.no_grad()
def vertex_motion(m: Model4D, verts: np.ndarray, chunk: int = 65536):
    """Per frame: local offsets ``[T, V, 3]`` (world, canonical frame) of the vertices, and the rigid
    transform ``[T, 4, 4]`` (world) applied after them (identity without a rigid motion)."""
    from diffusion4d.recon.deformation import apply_local

    T = len(m.times)
    v = torch.as_tensor(verts, dtype=torch.float32)
    offsets = np.zeros((T, len(verts), 3), dtype=np.float64)
    rigid = np.tile(np.eye(4), (T, 1, 1))
    field = m.field
    if field is None:
        return offsets, rigid
    sh_bases = m.model.sh().shape[1]
    from diffusion4d.recon.projection import quat_to_rotmat

    for i, t in enumerate(m.times.tolist()):
        for s in range(0, len(verts), chunk):
            g = _vertex_gaussians(v[s : s + chunk], sh_bases)
            out = apply_local(g, field, t)
            offsets[i, s : s + chunk] = (out["means"] - g["means"]).double().numpy()
        if field.rigid is not None:
            q, trans = field.rigid(t)
            R = quat_to_rotmat(q[None])[0].double().numpy()
            c = field.rigid.centre.double().numpy()
            rigid[i, :3, :3] = R
            rigid[i, :3, 3] = c + trans.double().numpy() - R @ c
    return offsets, rigid


# ----------------------------------------------------------------------------- glTF writing
_BYTE, _UBYTE, _SHORT, _USHORT, _UINT, _FLOAT = 5120, 5121, 5122, 5123, 5125, 5126


class _Writer:
    def __init__(self) -> None:
        import pygltflib as gl

        self.gl = gl
        self.gltf = gl.GLTF2(asset=gl.Asset(generator="Diffusion4D diffusion4d.recon.mesh_export", version="2.0"))
        self.blob = bytearray()

    def view(self, data: bytes, target: Optional[int] = None, stride: Optional[int] = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.gltf.bufferViews.append(self.gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data),
                                                        target=target, byteStride=stride))
        self.blob += data
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, component: int, type_: str, target: Optional[int] = None,
                 vertex: bool = False, bounds: bool = False, normalized: bool = False) -> int:
        array = np.ascontiguousarray(array)
        count = array.shape[0]
        width = 1 if array.ndim == 1 else array.shape[1]
        view = self.view(array.tobytes(), target, width * array.itemsize if vertex else None)
        acc = self.gl.Accessor(bufferView=view, byteOffset=0, componentType=component, count=count, type=type_,
                               normalized=True if normalized else None)
        if bounds:
            flat = array.reshape(count, -1)
            cast = float if array.dtype.kind == "f" else int
            acc.min = [cast(x) for x in flat.min(0)]
            acc.max = [cast(x) for x in flat.max(0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def sparse_delta(self, deltas: np.ndarray, eps: float, kind: str) -> Tuple[int, int]:
        """A VEC3 morph-target accessor holding ``deltas`` [V, 3] as a sparse accessor over zeros
        (vertices with ``|delta| > eps``), quantised: ``kind`` "position" -> SHORT normalised,
        "normal" -> BYTE normalised, "float" -> FLOAT. Returns (accessor, stored entries)."""
        gl = self.gl
        n = len(deltas)
        moving = np.nonzero(np.linalg.norm(deltas, axis=1) > eps)[0]
        if kind == "position":
            q = np.clip(np.rint(deltas[moving] * 32767.0), -32767, 32767).astype(np.int16)
            component, vals, scale = _SHORT, q, 32767.0
        elif kind == "normal":
            q = np.clip(np.rint(deltas[moving] * 127.0), -127, 127).astype(np.int8)
            component, vals, scale = _BYTE, q, 127.0
        else:
            component, vals, scale = _FLOAT, deltas[moving].astype(np.float32), None
        acc = gl.Accessor(componentType=component, count=n, type="VEC3", normalized=True if scale else None)
        if len(moving):
            index_type = (np.uint16, _USHORT) if n <= 65535 else (np.uint32, _UINT)
            iv = self.view(moving.astype(index_type[0]).tobytes())
            vv = self.view(np.ascontiguousarray(vals).tobytes())
            acc.sparse = gl.Sparse(count=len(moving), indices=gl.AccessorSparseIndices(bufferView=iv, componentType=index_type[1]),
                                   values=gl.AccessorSparseValues(bufferView=vv))
        acc.byteOffset = None  # no bufferView: the sparse values replace zeros
        if kind != "normal":  # POSITION needs exact bounds over all vertices (the zeros count), in stored units
            full = vals if len(moving) == n else np.concatenate([vals, np.zeros((1, 3), dtype=vals.dtype)])
            lo, hi = full.min(0), full.max(0)
            cast = int if scale else (lambda x: float(np.float32(x)))  # noqa: E731  normalised: the integer values
            acc.min = [cast(x) for x in lo]
            acc.max = [cast(x) for x in hi]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1, len(moving)

    def to_glb(self) -> bytes:
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.gltf.buffers = [self.gl.Buffer(byteLength=len(self.blob))]
        self.gltf.set_binary_blob(bytes(self.blob))
        return b"".join(self.gltf.save_to_bytes())


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def build_glb(mesh: CanonicalMesh, offsets: np.ndarray, rigid: np.ndarray, key_seconds: np.ndarray,
              lighting: str = "rig", sparse_eps: float = 5e-4, normal_eps: float = 0.02, name: str = "reconstruction",
              normal_targets: bool = True) -> Tuple[bytes, dict]:
    """Serialise the canonical mesh + per-frame local offsets (morph targets) + rigid transforms
    (node animation) keyed at ``key_seconds`` [T] to GLB bytes; returns (bytes, stats)."""
    gl_ = __import__("pygltflib")
    w = _Writer()
    T = len(key_seconds)
    to_g = lambda x: x @ WORLD_TO_GLTF.T  # noqa: E731  world -> glTF frame (row vectors)
    # colours
    lin = _srgb_to_linear(mesh.colours_srgb)
    if lighting == "rig":
        lin = lin / rig_shading(mesh.normals)[:, None]
    elif lighting != "unlit":
        raise ValueError(f"lighting must be 'rig' or 'unlit', got {lighting!r}")
    lin = np.clip(lin, 0.0, 1.0)
    pos_g = to_g(mesh.verts).astype(np.float32)
    nrm_g = to_g(mesh.normals).astype(np.float32)
    nrm_g /= np.maximum(np.linalg.norm(nrm_g, axis=1, keepdims=True), 1e-12)
    ARRAY, ELEMENT = 34962, 34963
    attrs = gl_.Attributes(
        POSITION=w.accessor(pos_g, _FLOAT, "VEC3", ARRAY, vertex=True, bounds=True),
        NORMAL=w.accessor(nrm_g, _FLOAT, "VEC3", ARRAY, vertex=True),
        COLOR_0=w.accessor(lin.astype(np.float32), _FLOAT, "VEC3", ARRAY, vertex=True),
    )
    V = len(pos_g)
    index_dtype, index_comp = (np.uint16, _USHORT) if V < 65535 else (np.uint32, _UINT)
    indices = w.accessor(mesh.faces.reshape(-1).astype(index_dtype), index_comp, "SCALAR", ELEMENT)
    material = gl_.Material(name="gaussian_colours", pbrMetallicRoughness=gl_.PbrMetallicRoughness(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0))
    used = []
    if lighting == "unlit":
        material.extensions = {"KHR_materials_unlit": {}}
        used.append("KHR_materials_unlit")
    w.gltf.materials.append(material)
    prim = gl_.Primitive(attributes=attrs, indices=indices, material=0, mode=4)
    stored = {"position": 0, "normal": 0}
    animated = T > 1
    quantised = False
    if animated:
        max_delta = float(np.abs(offsets).max()) if offsets.size else 0.0
        pos_kind = "position" if max_delta < 1.0 else "float"
        quantised = pos_kind == "position"
        targets = []
        base_n = mesh.normals
        for i in range(T):
            p_acc, n_p = w.sparse_delta(to_g(offsets[i]), sparse_eps, pos_kind)
            stored["position"] += n_p
            if normal_targets:
                dn = vertex_normals(mesh.verts + offsets[i], mesh.faces) - base_n
                n_acc, n_n = w.sparse_delta(to_g(dn), normal_eps, "normal")
                quantised = True
                stored["normal"] += n_n
                targets.append(gl_.Attributes(POSITION=p_acc, NORMAL=n_acc))
            else:
                targets.append(gl_.Attributes(POSITION=p_acc))
        prim.targets = targets
    mesh_gl = gl_.Mesh(name=name, primitives=[prim], weights=[0.0] * T if animated else None)
    if animated:
        mesh_gl.extras = {"targetNames": [f"frame_{i:03d}" for i in range(T)]}
    w.gltf.meshes.append(mesh_gl)
    node = gl_.Node(name=name, mesh=0)
    w.gltf.nodes.append(node)
    if animated:
        anim = gl_.Animation(name="reconstruction")
        times = w.accessor(key_seconds.astype(np.float32), _FLOAT, "SCALAR", bounds=True)
        onehot = np.eye(T, dtype=np.float32).reshape(-1)
        out_w = w.accessor(onehot, _FLOAT, "SCALAR")
        anim.samplers.append(gl_.AnimationSampler(input=times, output=out_w, interpolation="LINEAR"))
        anim.channels.append(gl_.AnimationChannel(sampler=0, target=gl_.AnimationChannelTarget(node=0, path="weights")))
        if not np.allclose(rigid, np.eye(4)):
            # glTF-frame node transform: M_g = W2G M_w G2W
            Rg = WORLD_TO_GLTF @ rigid[:, :3, :3] @ _G2W
            tg = rigid[:, :3, 3] @ WORLD_TO_GLTF.T
            quats = np.stack([_rotmat_to_quat_xyzw(R) for R in Rg])
            for k in range(1, T):  # sign continuity (slerp takes the short arc anyway)
                if np.dot(quats[k], quats[k - 1]) < 0:
                    quats[k] = -quats[k]
            out_t = w.accessor(tg.astype(np.float32), _FLOAT, "VEC3")
            out_r = w.accessor(quats.astype(np.float32), _FLOAT, "VEC4")
            anim.samplers.append(gl_.AnimationSampler(input=times, output=out_t, interpolation="LINEAR"))
            anim.channels.append(gl_.AnimationChannel(sampler=1, target=gl_.AnimationChannelTarget(node=0, path="translation")))
            anim.samplers.append(gl_.AnimationSampler(input=times, output=out_r, interpolation="LINEAR"))
            anim.channels.append(gl_.AnimationChannel(sampler=2, target=gl_.AnimationChannelTarget(node=0, path="rotation")))
            # the static pose (no animation playing) is frame 0
            node.translation = [float(x) for x in tg[0]]
            node.rotation = [float(x) for x in quats[0]]
        w.gltf.animations.append(anim)
    if quantised:
        used.append("KHR_mesh_quantization")
        w.gltf.extensionsRequired = ["KHR_mesh_quantization"]
    w.gltf.extensionsUsed = used or None
    w.gltf.scenes = [gl_.Scene(name="scene", nodes=[0])]
    w.gltf.scene = 0
    data = w.to_glb()
    return data, {"morph_targets": T if animated else 0, "normal_targets": bool(animated and normal_targets),
                  "sparse_position_entries": stored["position"],
                  "sparse_normal_entries": stored["normal"], "rigid_animation": bool(animated and not np.allclose(rigid, np.eye(4)))}


# ----------------------------------------------------------------------------- entry point
def _key_seconds(times: np.ndarray, duration: float) -> np.ndarray:
    return np.asarray(times, dtype=np.float64) * float(duration)


def curate_normalization(verts_t0: np.ndarray) -> dict:
    """The unit-box normalisation curation (``normalize: t0``) would apply to the export."""
    lo, hi = verts_t0.min(0), verts_t0.max(0)
    extent = float(np.max(hi - lo))
    return {"center": [float(x) for x in (lo + hi) / 2], "scale": 1.0 / extent if extent > 0 else 1.0, "extent": extent}


def export_glb(source, out_path: Union[str, Path], *, vertices: int = DEFAULT_VERTICES, grid: int = DEFAULT_GRID,
               iso: float = DEFAULT_ISO, lighting: str = "rig", sparse_eps: float = 5e-4,
               colour: str = "views", max_bytes: int = 5_000_000, viewer: bool = False) -> dict:
    """Export a fitted 4D Gaussian model as one animated ``.glb`` (see the module docstring).

    Args:
        source: a ``diffusion4d reconstruct`` output folder, a :class:`Model4D`, or
            ``(model, field[, times[, duration_seconds]])``.
        out_path: the ``.glb`` to write (atomically).
        vertices: vertex budget of the simplified mesh. grid: density-grid cells along the
            longest side. iso: marching-cubes level of the kernel sum.
        lighting: ``rig`` (de-light by the curation light rig) or ``unlit`` (see the module docstring).
        colour: ``views``: vertex colours baked from the model's own re-rendered orbit
            (``<recon>/dynamic``, frame i posed at time i, visibility by depth test), the
            kernel-weighted Gaussian colour where no view sees a vertex; ``kernel``: the
            kernel-weighted colour only (also the behaviour without a re-rendered clip).
        max_bytes: when the file would be larger, the NORMAL morph targets are left out (the
            local deformation then does not turn the normals; the rigid motion still does). 0: no cap.
        viewer: also write ``viewer.html`` next to the glb (:mod:`diffusion4d.recon.viewer`).

    Returns:
        A report (also written as ``<out>.json``): vertices, faces, frames, file size, seconds, ...
    """
    t_start = time.perf_counter()
    m = load_model_4d(source)
    out_path = Path(out_path)
    with torch.no_grad():
        g = m.model.activated()
        g = {k: v.detach().float().cpu() for k, v in g.items()}
        if m.field is not None:
            from diffusion4d.recon.deformation import apply_local

            field_cpu = m.field.cpu()
            m.field = field_cpu
            sh0 = apply_local(g, field_cpu, float(m.times[0]))["sh"][:, 0]  # colour at the first frame's time
        else:
            sh0 = g["sh"][:, 0]
    from diffusion4d.recon.sh import SH_C0

    colours = (SH_C0 * sh0 + 0.5).clamp(0, 1)
    mesh = extract_mesh(g, colours, grid=grid, iso=iso, vertices=vertices)
    t_mesh = time.perf_counter() - t_start
    offsets, rigid = vertex_motion(m, mesh.verts)
    t_motion = time.perf_counter() - t_start - t_mesh
    colour_source = "kernel"
    if colour == "views" and m.views_dir is not None:
        seen = _colour_from_views(mesh, offsets, rigid, m)
        colour_source = f"views ({seen:.1%} of vertices seen, the rest: kernel)"
    elif colour not in ("views", "kernel"):
        raise ValueError(f"colour must be 'views' or 'kernel', got {colour!r}")
    keys = _key_seconds(m.times, m.duration_seconds)
    data, stats = build_glb(mesh, offsets, rigid, keys, lighting=lighting, sparse_eps=sparse_eps)
    if max_bytes and len(data) > max_bytes and stats["normal_targets"]:
        # over budget: drop the NORMAL morph targets (the rigid motion still turns the normals)
        data, stats = build_glb(mesh, offsets, rigid, keys, lighting=lighting, sparse_eps=sparse_eps, normal_targets=False)
        log.info("export over %.1f MB: NORMAL morph targets dropped (%.2f MB)", max_bytes / 1e6, len(data) / 1e6)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out_path)
    v0 = mesh.verts + offsets[0]
    v0 = v0 @ rigid[0, :3, :3].T + rigid[0, :3, 3]
    try:
        import trimesh

        watertight = bool(trimesh.Trimesh(mesh.verts, mesh.faces, process=False).is_watertight)
    except Exception:  # trimesh missing or a degenerate mesh
        watertight = None
    report = {
        "glb": str(out_path), "source": m.source, "bytes": len(data), "frames": int(len(m.times)),
        "duration_seconds": m.duration_seconds, "key_seconds": [float(x) for x in keys], "lighting": lighting,
        "colour": colour_source,
        "watertight": watertight, **mesh.stats, **stats, "curate_normalization": curate_normalization(v0),
        "seconds": {"mesh": t_mesh, "motion": t_motion, "total": time.perf_counter() - t_start},
    }
    if viewer:
        from diffusion4d.recon.viewer import write_viewer

        try:
            report["viewer"] = str(write_viewer(out_path))
        except FileNotFoundError as err:
            log.warning("no viewer.html: %s", err)
            report["viewer"] = None
    report["seconds"]["total"] = time.perf_counter() - t_start
    json_path = out_path.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2))
    log.info("exported %s: %d vertices, %d frames, %.2f MB, %.1f s", out_path, mesh.stats["vertices"], len(m.times),
             len(data) / 1e6, report["seconds"]["total"])
    return report


__all__ = ["DEFAULT_GRID", "DEFAULT_ISO", "DEFAULT_VERTICES", "Model4D", "density_grid", "export_glb", "extract_mesh",
           "edge_counts", "load_model_4d", "make_manifold", "vertex_motion"]


# ----------------------------------------------------------------------------- colour from views
def posed(mesh: CanonicalMesh, offsets: np.ndarray, rigid: np.ndarray, i: int) -> Tuple[np.ndarray, np.ndarray]:
    """World vertices and smooth normals of frame ``i``."""
    v = mesh.verts + offsets[i]
    n = vertex_normals(v, mesh.faces)
    R, t = rigid[i, :3, :3], rigid[i, :3, 3]
    return v @ R.T + t, n @ R.T


def _colour_from_views(mesh: CanonicalMesh, offsets: np.ndarray, rigid: np.ndarray, m: Model4D) -> float:
    """Replace ``mesh.colours_srgb`` by colours baked from ``m.views_dir``; returns the fraction seen."""
    from diffusion4d.io import read_clip

    clip = read_clip(m.views_dir)
    cams = clip.cameras
    if len(cams.frames) != len(offsets) or not np.allclose(cams.times, m.times):
        log.warning("%s does not match the model's frame times: kernel colours", m.views_dir)
        return 0.0
    pv, pn = zip(*(posed(mesh, offsets, rigid, i) for i in range(len(offsets))))
    cols, w = bake_view_colours(np.stack(pv), mesh.faces, np.stack(pn), clip.frames, np.asarray(cams.c2w), np.asarray(cams.K))
    # blend towards the kernel colour where the views give little evidence
    a = np.clip(w / 0.5, 0.0, 1.0)[:, None]
    mesh.colours_srgb = a * cols + (1 - a) * mesh.colours_srgb
    return float((w > 0).mean())


_DEPTH_VS = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); }
"""
_DEPTH_FS = """
#version 330
out vec4 f_color;
void main() { f_color = vec4(1.0); }
"""


def bake_view_colours(verts_per_frame: np.ndarray, faces: np.ndarray, normals_per_frame: np.ndarray, frames: np.ndarray,
                      c2w: np.ndarray, K: np.ndarray, min_alpha: float = 0.5,
                      depth_eps: float = 0.02) -> Tuple[np.ndarray, np.ndarray]:
    """Average colour of every vertex over the views that see it.

    ``verts_per_frame`` / ``normals_per_frame`` ``[T, V, 3]`` are the posed mesh at each view's time,
    ``frames`` ``[T, H, W, 4]`` uint8 straight-alpha renders, ``c2w`` ``[T, 4, 4]`` OpenCV, ``K`` ``[T, 3, 3]``.
    Visibility: the vertex's depth against the mesh's own depth buffer (moderngl, the curation
    renderer's context). Weight: ``max(0, n . to_camera) * alpha``. Returns (sRGB colours ``[V, 3]``,
    summed weights ``[V]``; 0 where no view sees the vertex)."""
    import moderngl

    from diffusion4d.data_curation.render.fast import gl_context, projection_from_K
    from diffusion4d.cameras import opencv_to_opengl

    T, H, W = frames.shape[:3]
    ctx = gl_context()
    prog = ctx.program(vertex_shader=_DEPTH_VS, fragment_shader=_DEPTH_FS)
    fbo = ctx.framebuffer(ctx.renderbuffer((W, H), 4), ctx.depth_renderbuffer((W, H)))
    acc = np.zeros((len(verts_per_frame[0]), 3))
    wsum = np.zeros(len(verts_per_frame[0]))
    img = frames.astype(np.float64) / 255.0
    try:
        for i in range(T):
            v = verts_per_frame[i]
            view = np.linalg.inv(opencv_to_opengl(c2w[i]))
            mvp = projection_from_K(K[i], W, H) @ view
            tri = v[faces.reshape(-1)].astype(np.float32)
            vbo = ctx.buffer(tri.tobytes())
            vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos")])
            prog["mvp"].write(mvp.T.astype(np.float32).tobytes())
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            ctx.enable(moderngl.DEPTH_TEST)
            vao.render(moderngl.TRIANGLES)
            depth = np.frombuffer(fbo.read(components=1, attachment=-1, dtype="f4", alignment=1), dtype=np.float32).reshape(H, W)[::-1]
            vao.release()
            vbo.release()
            clip = np.concatenate([v, np.ones((len(v), 1))], 1) @ mvp.T
            ndc = clip[:, :3] / clip[:, 3:4]
            px = (ndc[:, 0] + 1) / 2 * W
            py = (1 - ndc[:, 1]) / 2 * H
            lin = lambda z_ndc: 2.0 * 100.0 * 0.01 / ((100.0 + 0.01) - z_ndc * (100.0 - 0.01))  # noqa: E731  eye depth
            zv = clip[:, 3]  # the vertex's eye depth
            xi, yi = np.floor(px).astype(int), np.floor(py).astype(int)
            ok = (clip[:, 3] > 0) & (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
            xi, yi = np.clip(xi, 0, W - 1), np.clip(yi, 0, H - 1)
            # visible: not behind the depth buffer (min over the 3x3 neighbourhood: vertices sit on edges)
            dpad = np.pad(lin(depth * 2.0 - 1.0), 1, mode="edge")
            dmax = np.max(np.stack([dpad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]), 0)
            vis = ok & (zv <= dmax[yi, xi] + depth_eps)
            to_cam = c2w[i][:3, 3] - v
            to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-12)
            facing = np.clip(np.einsum("ij,ij->i", normals_per_frame[i], to_cam), 0.0, None)
            # bilinear sample of the straight colour and alpha at the vertex's pixel
            from scipy.ndimage import map_coordinates

            coords = np.stack([py - 0.5, px - 0.5])
            a = map_coordinates(img[i, ..., 3], coords, order=1, mode="nearest")
            col = np.stack([map_coordinates(img[i, ..., c], coords, order=1, mode="nearest") for c in range(3)], -1)
            wv = np.where(vis & (a > min_alpha), facing ** 2 * a, 0.0)
            acc += wv[:, None] * col
            wsum += wv
    finally:
        fbo.release()
        prog.release()
    out = acc / np.maximum(wsum, 1e-12)[:, None]
    return np.clip(out, 0.0, 1.0), wsum
