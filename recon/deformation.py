"""Deformation fields over time: a HexPlane + small MLP heads (4DGS), an optional per-time
rigid motion, and the as-rigid-as-possible penalty (4Real).

:class:`HexPlaneDeformation` factorises a 4D (x, y, z, t) feature field into six planes
(xy, xz, yz, xt, yt, zt) at one or more spatial resolutions (K-Planes / HexPlane). A point's
feature is the Hadamard product of its six bilinear plane samples, concatenated over
resolutions; MLP heads map it to deltas of position, rotation (added to the quaternion),
log-scale and, optionally, DC colour (lighting baked into the frames changes as a part turns).
The heads' last layers start at zero, so training begins from the canonical set.

A position-offset field cannot represent a large rotation well: an object spinning 15 degrees
per frame needs offsets as large as the object, different for every point and time. With
``rigid_knots > 0`` the field also holds a :class:`RigidMotion` (one rotation + translation per
time knot) applied *after* the local offsets, so the HexPlane only models what is not rigid:

    x'(t) = R(t) (x + dx(x, t) - c) + c + T(t),    q'(t) = q_R(t) * (q + dq(x, t))
"""

from __future__ import annotations

import itertools
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion4d.recon.projection import quat_to_rotmat

#: coordinate pairs of the six planes: (x,y) (x,z) (y,z) (x,t) (y,t) (z,t)
PLANE_AXES: List[Tuple[int, int]] = list(itertools.combinations(range(4), 2))


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of quaternions ``[..., 4]`` (w, x, y, z), broadcasting."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def axis_angle_to_quat(v: Tensor) -> Tensor:
    """Rotation vectors ``[..., 3]`` (axis * angle in radians, any magnitude) -> unit quaternions ``[..., 4]``.

    Smooth at zero: ``sin(a/2)/a`` is replaced by its Taylor series below 1e-4 rad."""
    angle = v.norm(dim=-1, keepdim=True)
    small = angle < 1e-4
    safe = torch.where(small, torch.ones_like(angle), angle)
    k = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(safe / 2) / safe)
    return torch.cat([torch.cos(angle / 2), v * k], dim=-1)


class RigidMotion(nn.Module):
    """A rotation and a translation per time knot (knot ``k`` at time ``k / (K-1)``), about ``centre``.

    ``forward(t) -> (quat [4], translation [3])``. Rotations are stored as rotation vectors and
    interpolated linearly between knots in that space (exact for a fixed axis, and free of the
    q / -q ambiguity of slerp over several turns). Knot 0 is the identity: the canonical set is
    the scene at t0. :meth:`extrapolate` initialises not-yet-fitted knots at constant velocity,
    which lets a time curriculum track a spin far beyond what a gradient step could find.
    """

    def __init__(self, knots: int) -> None:
        super().__init__()
        if knots < 2:
            raise ValueError("a rigid motion needs at least 2 time knots")
        self.knots = knots
        self.rotvecs = nn.Parameter(torch.zeros(knots - 1, 3))  # knots 1..K-1; knot 0 is the identity
        self.translations = nn.Parameter(torch.zeros(knots - 1, 3))
        self.register_buffer("centre", torch.zeros(3))
        self.register_buffer("fitted", torch.tensor(1))  # knots [0, fitted) have been reached by the curriculum

    def knot_values(self) -> Tuple[Tensor, Tensor]:
        """All knots: rotation vectors ``[K, 3]`` and translations ``[K, 3]`` (row 0 = identity)."""
        zero = self.rotvecs.new_zeros(1, 3)
        return torch.cat([zero, self.rotvecs]), torch.cat([zero, self.translations])

    def forward(self, t: float) -> Tuple[Tensor, Tensor]:
        rot, trans = self.knot_values()
        x = min(max(float(t), 0.0), 1.0) * (self.knots - 1)
        k = min(int(x), self.knots - 2)
        w = x - k
        v = (1 - w) * rot[k] + w * rot[k + 1]
        return axis_angle_to_quat(v), (1 - w) * trans[k] + w * trans[k + 1]

    def knot_index_after(self, t: float) -> int:
        """The first knot at or after time ``t`` (the last knot that frame time ``t`` depends on)."""
        return min(self.knots - 1, math.ceil(float(t) * (self.knots - 1) - 1e-6))

    @torch.no_grad()
    def extrapolate(self, until: int) -> None:
        """Set knots ``fitted .. until`` by constant-velocity extrapolation from the two before them."""
        for k in range(int(self.fitted), until + 1):
            for p in (self.rotvecs, self.translations):
                prev = p[k - 2] if k >= 2 else p.new_zeros(3)
                prev2 = p[k - 3] if k >= 3 else p.new_zeros(3)
                p[k - 1] = 2 * prev - prev2
        self.fitted.fill_(max(int(self.fitted), until + 1))

    @torch.no_grad()
    def interpolate(self, first: int, last: int) -> None:
        """Set the knots strictly between knots ``first`` and ``last`` on the straight line between
        them (rotation vectors and translations): knots at times with no training frame (held-out
        frames) then sit between their fitted neighbours instead of where extrapolation left them."""
        rot, trans = self.knot_values()
        for k in range(first + 1, last):
            w = (k - first) / (last - first)
            self.rotvecs[k - 1] = (1 - w) * rot[first] + w * rot[last]
            self.translations[k - 1] = (1 - w) * trans[first] + w * trans[last]

    def acceleration(self) -> Tensor:
        """Mean squared second difference of the fitted knots (rotation vectors and translations)."""
        rot, trans = self.knot_values()
        n = int(self.fitted)
        rot, trans = rot[:n], trans[:n]
        if n < 3:
            return rot.sum() * 0
        d2 = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731
        return d2(rot).pow(2).mean() + d2(trans).pow(2).mean()


class HexPlaneDeformation(nn.Module):
    """``forward(means [N,3], t) -> {"means": [N,3], "quats": [N,4], "scales": [N,3], "colour": [N,3] | None}``
    (deltas in the canonical frame; see :func:`deform` for how they and :attr:`rigid` compose)."""

    def __init__(
        self,
        resolutions: Sequence[int] = (32,),
        time_resolution: int = 12,
        features: int = 16,
        hidden: int = 64,
        bound: float = 1.0,
        colour: bool = False,
        rigid_knots: int = 0,
        rigid_free_offsets: bool = False,
    ) -> None:
        super().__init__()
        self.config = dict(
            resolutions=list(resolutions), time_resolution=time_resolution, features=features, hidden=hidden, bound=bound,
            colour=colour, rigid_knots=rigid_knots, rigid_free_offsets=rigid_free_offsets,
        )  # fmt: skip
        self.bound = bound
        self.rigid_free_offsets = bool(rigid_free_offsets and rigid_knots)
        self.planes = nn.ParameterList()
        for res in resolutions:
            for a, b in PLANE_AXES:
                ra = time_resolution if a == 3 else res
                rb = time_resolution if b == 3 else res
                if b == 3:  # time planes start at 1: the product ignores time until trained
                    init = torch.ones(1, features, rb, ra)
                else:
                    init = torch.empty(1, features, rb, ra).uniform_(0.1, 0.5)
                self.planes.append(nn.Parameter(init))
        dim = features * len(resolutions)
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({"means": nn.Linear(hidden, 3), "quats": nn.Linear(hidden, 4), "scales": nn.Linear(hidden, 3)})
        if colour:
            self.heads["colour"] = nn.Linear(hidden, 3)
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.rigid = RigidMotion(rigid_knots) if rigid_knots else None

    def features(self, means: Tensor, t: float) -> Tensor:
        """HexPlane features ``[N, F * len(resolutions)]`` at positions ``means`` and time ``t`` in [0, 1]."""
        xyz = (means / self.bound).clamp(-1.0, 1.0)
        tt = torch.full_like(xyz[:, :1], 2.0 * float(t) - 1.0)
        coords = torch.cat([xyz, tt], dim=-1)  # [N, 4] in [-1, 1]
        out, i = [], 0
        n_res = len(self.planes) // len(PLANE_AXES)
        for _ in range(n_res):
            feat = 1.0
            for a, b in PLANE_AXES:
                grid = coords[:, [a, b]][None, :, None, :]  # [1, N, 1, 2] (x -> axis a, y -> axis b)
                sample = F.grid_sample(self.planes[i], grid, mode="bilinear", align_corners=True)  # [1, F, N, 1]
                feat = feat * sample[0, :, :, 0].t()
                i += 1
            out.append(feat)
        return torch.cat(out, dim=-1)

    def forward(self, means: Tensor, t: float) -> Dict[str, Optional[Tensor]]:
        h = self.trunk(self.features(means, t))
        out: Dict[str, Optional[Tensor]] = {k: head(h) for k, head in self.heads.items()}
        out.setdefault("colour", None)
        return out

    def total_variation(self) -> Tensor:
        """Squared-difference smoothness of every plane (both axes), plus a second-order
        smoothness along time for the time planes (4DGS's regulariser)."""
        tv = 0.0
        for i, plane in enumerate(self.planes):
            a, b = PLANE_AXES[i % len(PLANE_AXES)]
            tv = tv + (plane[..., 1:, :] - plane[..., :-1, :]).pow(2).mean() + (plane[..., :, 1:] - plane[..., :, :-1]).pow(2).mean()
            if b == 3 and plane.shape[-2] > 2:
                d2 = plane[..., 2:, :] - 2 * plane[..., 1:-1, :] + plane[..., :-2, :]
                tv = tv + d2.pow(2).mean()
        return tv


def deform(gaussians: Dict[str, Tensor], field: HexPlaneDeformation, t: float) -> Dict[str, Tensor]:
    """Apply ``field`` at time ``t`` to activated Gaussians (``means, quats, scales, opacities, sh``):
    the local deltas (:func:`apply_local`), then the rigid motion when the field has one.

    View-dependent SH bands are not rotated with the rigid motion (degree 0 and 1 presets)."""
    out = apply_local(gaussians, field, t)
    return apply_rigid(out, field.rigid, t) if field.rigid is not None else out


def apply_local(gaussians: Dict[str, Tensor], field: HexPlaneDeformation, t: float) -> Dict[str, Tensor]:
    """Add the HexPlane heads' deltas at time ``t`` (canonical frame) to activated Gaussians.

    With ``field.rigid_free_offsets`` the position deltas lose their best-fitting rigid motion
    (:func:`remove_rigid_component`), so that motion is the rigid knots' alone."""
    d = field(gaussians["means"], t)
    offsets = d["means"]
    if field.rigid_free_offsets:
        offsets = remove_rigid_component(offsets, gaussians["means"], gaussians["opacities"].reshape(-1))
    out = dict(gaussians)
    out["means"] = gaussians["means"] + offsets
    out["quats"] = gaussians["quats"] + d["quats"]
    out["scales"] = gaussians["scales"] * torch.exp(d["scales"])
    if d["colour"] is not None:
        sh = gaussians["sh"]
        out["sh"] = torch.cat([sh[:, :1] + d["colour"][:, None], sh[:, 1:]], dim=1)
    return out


def remove_rigid_component(offsets: Tensor, points: Tensor, weights: Tensor, eps: float = 1e-6) -> Tensor:
    """``offsets [N, 3]`` of ``points [N, 3]`` minus the small rigid motion that fits them best
    (weighted least squares, ``weights [N]``): a translation ``v`` and an infinitesimal rotation
    ``w`` about the weighted centroid ``c``, ``offsets ~ v + w x (points - c)``.

    The result has zero weighted mean and no net (linearised) rotation about ``c``. Local offsets
    under rigid knots are otherwise free to carry a global motion that the knots undo, and that
    trade-off drifts: on a morphing cube the knots walked 3 units away while the offsets walked
    the cube back, and the frames between fitted ones broke (benchmarks/RESULTS.md)."""
    w = weights.clamp_min(0).reshape(-1, 1)
    total = w.sum().clamp_min(1e-12)
    c = (w * points).sum(0) / total
    v = (w * offsets).sum(0) / total
    p = points - c
    d = offsets - v
    # normal equations of min sum_i w_i |d_i - w x p_i|^2: (sum w (|p|^2 I - p p^T)) w = sum w p x d
    eye = torch.eye(3, dtype=points.dtype, device=points.device)
    inertia = (w * p).t() @ p
    A = eye * inertia.trace() - inertia
    b = (w * torch.linalg.cross(p, d)).sum(0)
    omega = torch.linalg.solve(A + eps * (inertia.trace() + 1e-12) * eye, b)
    return d - torch.linalg.cross(omega.expand_as(p), p)


def apply_rigid(gaussians: Dict[str, Tensor], rigid: RigidMotion, t: float) -> Dict[str, Tensor]:
    """Move Gaussians (``means [N,3]``, ``quats [N,4]``) by ``rigid`` at time ``t`` about its centre."""
    q, trans = rigid(t)
    c = rigid.centre
    out = dict(gaussians)
    out["means"] = (gaussians["means"] - c) @ quat_to_rotmat(q).t() + c + trans
    out["quats"] = quat_multiply(q, gaussians["quats"])
    return out


def knn_graph(points: Tensor, k: int = 8, chunk: int = 2048) -> Tensor:
    """Indices ``[N, k]`` of each point's ``k`` nearest neighbours (brute force, chunked)."""
    k = min(k, points.shape[0] - 1)
    out = []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start : start + chunk], points)
        d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = float("inf")
        out.append(d.topk(k, largest=False).indices)
    return torch.cat(out)


def arap_loss(canonical: Tensor, deformed: Tensor, neighbours: Tensor) -> Tensor:
    """As-rigid-as-possible penalty: mean squared change of k-NN distances ``|x_i - x_j|``."""
    d0 = (canonical[:, None] - canonical[neighbours]).norm(dim=-1)
    d1 = (deformed[:, None] - deformed[neighbours]).norm(dim=-1)
    return (d1 - d0).pow(2).mean()
