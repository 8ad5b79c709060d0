"""A glTF scene ready to evaluate at any animation time.

:func:`load_scene` turns a :class:`GltfDocument` into :class:`Scene` (nodes, meshes with
morph targets and skin attributes, skins, materials, animations). :meth:`Scene.evaluate`
poses it at a time (node TRS channels, morph weights, skinning) and returns world-space
triangle soups in **our** world (Z up, via ``GLTF_TO_WORLD``), one :class:`DrawItem` per
primitive.

Skinning follows the glTF spec: ``jointMatrix_j = inverse(global(mesh node)) @ global(joint_j)
@ inverseBind_j``; a vertex is ``global(mesh node) @ sum_j w_j jointMatrix_j @ p`` (so the mesh
node's own transform cancels, as the spec requires). Any number of JOINTS_n/WEIGHTS_n sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from diffusion4d.cameras import GLTF_TO_WORLD

from .animation import Animation, Channel, Sampler
from .errors import AssetError
from ..transforms import trs_matrix
from .loader import GltfDocument, load_document

_TRIANGLES, _STRIP, _FAN = 4, 5, 6


# ----------------------------------------------------------------------------- math
def normal_matrices(m: np.ndarray) -> np.ndarray:
    """Cofactor matrices of the linear parts [..., 3, 3] of ``m`` [..., 4|3, 4|3], sign-corrected.

    ``cof(M) = det(M) inverse(M)^T`` transforms normals like the inverse transpose up to a
    positive scale, and stays defined for singular matrices.
    """
    a = m[..., :3, :3]
    c0, c1, c2 = a[..., :, 0], a[..., :, 1], a[..., :, 2]
    cof = np.stack([np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1)], axis=-1)
    det = np.sum(c0 * np.cross(c1, c2), axis=-1)
    return cof * np.where(det < 0, -1.0, 1.0)[..., None, None]


def _normalise(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-20, n, 1.0)


# ----------------------------------------------------------------------------- data
@dataclass
class Material:
    base_color: np.ndarray = field(default_factory=lambda: np.ones(4))  # linear RGBA factor
    texture: Optional[np.ndarray] = None  # [H, W, 4] uint8 sRGB base-colour texture
    texcoord: int = 0  # TEXCOORD_n set the texture uses
    wrap_s: int = 10497  # GL wrap modes (REPEAT)
    wrap_t: int = 10497
    mag_filter: int = 9729  # LINEAR
    min_filter: int = 9987  # LINEAR_MIPMAP_LINEAR
    alpha_mode: str = "OPAQUE"  # OPAQUE | MASK | BLEND
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    texture_index: int = -1  # glTF texture id (cache key for renderers)


@dataclass
class Primitive:
    positions: np.ndarray  # [V, 3] float64 (glTF frame)
    indices: np.ndarray  # [F, 3] int64
    normals: Optional[np.ndarray] = None  # [V, 3]
    colors: Optional[np.ndarray] = None  # [V, 4] linear
    texcoords: Dict[int, np.ndarray] = field(default_factory=dict)  # set -> [V, 2]
    joints: Optional[np.ndarray] = None  # [V, 4k] int64
    weights: Optional[np.ndarray] = None  # [V, 4k] float64
    target_positions: List[np.ndarray] = field(default_factory=list)  # [V, 3] deltas per morph target
    target_normals: List[Optional[np.ndarray]] = field(default_factory=list)
    material: Material = field(default_factory=Material)


@dataclass
class Mesh:
    primitives: List[Primitive]
    weights: np.ndarray  # [num_targets] default morph weights


@dataclass
class Node:
    name: str
    children: List[int]
    matrix: Optional[np.ndarray]  # [4, 4] when the node has a fixed matrix
    translation: np.ndarray
    rotation: np.ndarray
    scale: np.ndarray
    mesh: Optional[int] = None
    skin: Optional[int] = None
    weights: Optional[np.ndarray] = None


@dataclass
class Skin:
    joints: List[int]
    inverse_bind: np.ndarray  # [J, 4, 4]


@dataclass
class DrawItem:
    """One posed primitive in world space (Z up)."""

    positions: np.ndarray  # [V, 3] float64
    normals: np.ndarray  # [V, 3] unit; zeros where undefined (flat shading falls back)
    colors: np.ndarray  # [V, 4] linear vertex colours (ones when absent)
    texcoords: np.ndarray  # [V, 2] (zeros when absent)
    indices: np.ndarray  # [F, 3]
    material: Material
    has_normals: bool = True


# ----------------------------------------------------------------------------- scene
@dataclass
class Scene:
    nodes: List[Node]
    roots: List[int]
    meshes: List[Mesh]
    skins: List[Skin]
    animations: List[Animation]
    animation_index: Optional[int] = None  # the selected animation (None: no animation)
    asset_extras: Dict[str, Any] = field(default_factory=dict)  # the file's ``asset.extras`` (e.g. uid, caption, object)

    @property
    def animation(self) -> Optional[Animation]:
        return None if self.animation_index is None else self.animations[self.animation_index]

    @property
    def duration(self) -> float:
        """Seconds of the selected animation (0 when there is none)."""
        return self.animation.duration if self.animation is not None else 0.0

    def select_animation(self, rule: Union[str, int] = "longest") -> None:
        """Pick the animation: ``"longest"`` (default), ``"first"``, an index, or a name."""
        if not self.animations:
            self.animation_index = None
            return
        if isinstance(rule, int) or (isinstance(rule, str) and rule.lstrip("-").isdigit()):
            idx = int(rule)
            if not 0 <= idx < len(self.animations):
                raise AssetError("no_animation", f"animation index {idx} does not exist ({len(self.animations)} animations)")
            self.animation_index = idx
        elif rule == "longest":
            self.animation_index = int(np.argmax([a.duration for a in self.animations]))
        elif rule == "first":
            self.animation_index = 0
        else:
            names = [a.name for a in self.animations]
            if rule not in names:
                raise AssetError("no_animation", f"no animation named {rule!r} (have {names})")
            self.animation_index = names.index(rule)

    def time_at(self, t_normalised: float) -> float:
        """Normalised time in [0, 1] -> seconds of the selected animation."""
        anim = self.animation
        return 0.0 if anim is None else anim.start + float(t_normalised) * anim.duration

    # ---------------------------------------------------------------- posing
    def _local_matrices(self, seconds: float):
        trs = {i: [n.translation.copy(), n.rotation.copy(), n.scale.copy()] for i, n in enumerate(self.nodes)}
        weights: Dict[int, np.ndarray] = {}
        anim = self.animation
        if anim is not None:
            for ch in anim.channels:
                if ch.path == "weights":
                    weights[ch.node] = ch.sampler.evaluate(seconds)
                else:
                    slot = {"translation": 0, "rotation": 1, "scale": 2}[ch.path]
                    trs[ch.node][slot] = ch.sampler.evaluate(seconds, is_rotation=ch.path == "rotation")
        local = []
        for i, n in enumerate(self.nodes):
            animated = anim is not None and any(c.node == i and c.path != "weights" for c in anim.channels)
            if n.matrix is not None and not animated:
                local.append(n.matrix)
            else:
                local.append(trs_matrix(*trs[i]))
        return local, weights

    def global_matrices(self, seconds: float) -> tuple:
        """([num_nodes, 4, 4] glTF-frame global matrices, {node: animated morph weights})."""
        local, weights = self._local_matrices(seconds)
        out = np.tile(np.eye(4), (len(self.nodes), 1, 1))
        stack = [(r, np.eye(4)) for r in self.roots]
        while stack:
            i, parent = stack.pop()
            out[i] = parent @ local[i]
            stack.extend((c, out[i]) for c in self.nodes[i].children)
        return out, weights

    def joint_matrices(self, skin_index: int, mesh_node: int, globals_: np.ndarray) -> np.ndarray:
        """[J, 4, 4] = inverse(global(mesh node)) @ global(joint) @ inverseBind."""
        skin = self.skins[skin_index]
        inv_mesh = np.linalg.inv(globals_[mesh_node])
        return inv_mesh @ globals_[skin.joints] @ skin.inverse_bind

    def evaluate(self, seconds: float, skinning: str = "vectorised") -> List[DrawItem]:
        """Pose the scene at ``seconds`` of the selected animation; world-space (Z up) draw items."""
        globals_, anim_weights = self.global_matrices(seconds)
        to_world = GLTF_TO_WORLD
        items: List[DrawItem] = []
        for ni in self._reachable():
            node = self.nodes[ni]
            if node.mesh is None:
                continue
            mesh = self.meshes[node.mesh]
            w = anim_weights.get(ni, node.weights if node.weights is not None else mesh.weights)
            for prim in mesh.primitives:
                pos, nrm = prim.positions, prim.normals
                if prim.target_positions and w is not None and len(w):
                    pos = pos + sum(float(wk) * d for wk, d in zip(w, prim.target_positions) if wk != 0.0)
                    if nrm is not None:
                        nrm = nrm + sum(float(wk) * d for wk, d in zip(w, prim.target_normals) if wk != 0.0 and d is not None)
                g = to_world @ globals_[ni]
                if node.skin is not None and prim.joints is not None:
                    jm = self.joint_matrices(node.skin, ni, globals_)
                    skin_fn = skin_vertices if skinning == "vectorised" else skin_vertices_reference
                    pos, nrm = skin_fn(pos, nrm, prim.joints, prim.weights, jm)
                pos_w = pos @ g[:3, :3].T + g[:3, 3]
                has_normals = nrm is not None
                nrm_w = _normalise(nrm @ normal_matrices(g).T) if has_normals else np.zeros_like(pos_w)
                v = len(pos_w)
                items.append(DrawItem(
                    positions=pos_w, normals=nrm_w,
                    colors=prim.colors if prim.colors is not None else np.ones((v, 4)),
                    texcoords=prim.texcoords.get(prim.material.texcoord, np.zeros((v, 2))),
                    indices=prim.indices, material=prim.material, has_normals=has_normals))
        return items

    def _reachable(self) -> List[int]:
        out, stack = [], list(self.roots)
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(self.nodes[i].children)
        return sorted(out)


# ----------------------------------------------------------------------------- skinning
def skin_vertices(pos: np.ndarray, nrm: Optional[np.ndarray], joints: np.ndarray, weights: np.ndarray, joint_mats: np.ndarray):
    """Linear blend skinning, vectorised. pos [V, 3], joints/weights [V, K], joint_mats [J, 4, 4]."""
    total = weights.sum(axis=1, keepdims=True)
    w = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 0.0)
    skin = np.einsum("vk,vkij->vij", w, joint_mats[joints])  # [V, 4, 4]
    skin[total[:, 0] <= 0] = np.eye(4)
    out_pos = np.einsum("vij,vj->vi", skin[:, :3, :3], pos) + skin[:, :3, 3]
    out_nrm = None if nrm is None else np.einsum("vij,vj->vi", normal_matrices(skin), nrm)
    return out_pos, out_nrm


def skin_vertices_reference(pos, nrm, joints, weights, joint_mats):
    """Per-vertex loop twin of :func:`skin_vertices` (tests and debugging)."""
    out_pos = np.zeros_like(pos, dtype=np.float64)
    out_nrm = None if nrm is None else np.zeros_like(nrm, dtype=np.float64)
    for v in range(len(pos)):
        total = float(np.sum(weights[v]))
        m = np.zeros((4, 4))
        if total <= 0:
            m = np.eye(4)
        else:
            for j, wj in zip(joints[v], weights[v]):
                m += (wj / total) * joint_mats[j]
        out_pos[v] = (m @ np.append(pos[v], 1.0))[:3]
        if nrm is not None:
            m3 = m[:3, :3]
            out_nrm[v] = abs(np.linalg.det(m3)) * (np.linalg.inv(m3).T @ nrm[v])  # = sign(det) cofactor(m3) @ n
    return out_pos, out_nrm


# ----------------------------------------------------------------------------- building
def _material(doc: GltfDocument, index: Optional[int]) -> Material:
    g = doc.gltf
    if index is None:
        return Material()
    if not 0 <= index < len(g.materials):
        raise AssetError("corrupt", f"material {index} does not exist")
    m = g.materials[index]
    out = Material(alpha_mode=m.alphaMode or "OPAQUE", alpha_cutoff=float(m.alphaCutoff if m.alphaCutoff is not None else 0.5),
                   double_sided=bool(m.doubleSided))
    tex_info = None
    pbr = m.pbrMetallicRoughness
    if pbr is not None:
        if pbr.baseColorFactor is not None:
            out.base_color = np.asarray(pbr.baseColorFactor, dtype=np.float64)
        tex_info = pbr.baseColorTexture
    sg = (m.extensions or {}).get("KHR_materials_pbrSpecularGlossiness")
    if sg:  # legacy workflow: diffuse instead of base colour
        out.base_color = np.asarray(sg.get("diffuseFactor", [1, 1, 1, 1]), dtype=np.float64)
        tex = sg.get("diffuseTexture")
        tex_info = None if tex is None else type("T", (), {"index": tex.get("index"), "texCoord": tex.get("texCoord", 0)})()
    if tex_info is not None and tex_info.index is not None:
        if not 0 <= tex_info.index < len(g.textures):
            raise AssetError("missing_texture", f"material {index} uses texture {tex_info.index}, which does not exist")
        tex = g.textures[tex_info.index]
        if tex.source is None:
            raise AssetError("missing_texture", f"texture {tex_info.index} has no image source")
        out.texture = doc.image(tex.source)
        out.texture_index = int(tex_info.index)
        out.texcoord = int(tex_info.texCoord or 0)
        if tex.sampler is not None and 0 <= tex.sampler < len(g.samplers):
            s = g.samplers[tex.sampler]
            out.wrap_s, out.wrap_t = s.wrapS or 10497, s.wrapT or 10497
            out.mag_filter, out.min_filter = s.magFilter or 9729, s.minFilter or 9987
    return out


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    idx = indices.astype(np.int64)
    if mode == _TRIANGLES:
        n = len(idx) // 3 * 3
        return idx[:n].reshape(-1, 3)
    if mode == _STRIP and len(idx) >= 3:
        tris = [(idx[i], idx[i + 1], idx[i + 2]) if i % 2 == 0 else (idx[i + 1], idx[i], idx[i + 2]) for i in range(len(idx) - 2)]
        return np.asarray(tris, dtype=np.int64)
    if mode == _FAN and len(idx) >= 3:
        return np.stack([np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]], axis=1)
    return np.zeros((0, 3), dtype=np.int64)


def _primitive(doc: GltfDocument, p, mesh_index: int) -> Optional[Primitive]:
    attrs = p.attributes
    mode = _TRIANGLES if p.mode is None else p.mode
    if attrs.POSITION is None or mode not in (_TRIANGLES, _STRIP, _FAN):
        return None
    what = f"mesh {mesh_index}"
    pos = doc.accessor(attrs.POSITION).astype(np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(pos)):
        raise AssetError("non_finite", f"{what}: POSITION holds NaN/Inf")
    v = len(pos)
    idx = doc.accessor(p.indices).astype(np.int64).reshape(-1) if p.indices is not None else np.arange(v)
    tris = _triangles(idx, mode)
    if tris.size and (tris.max() >= v or tris.min() < 0):
        raise AssetError("accessor_out_of_range", f"{what}: index {int(tris.max())} >= vertex count {v}")

    def vertex_attr(name: str, width: int) -> Optional[np.ndarray]:
        index = getattr(attrs, name, None)
        if index is None:
            return None
        data = doc.accessor(index).astype(np.float64).reshape(-1, width) if width else doc.accessor(index)
        if len(data) != v:
            raise AssetError("corrupt", f"{what}: {name} has {len(data)} entries for {v} vertices")
        return data

    nrm = vertex_attr("NORMAL", 3)
    if nrm is not None and not np.all(np.isfinite(nrm)):
        nrm = None  # broken normals: fall back to flat shading
    colors = None
    if attrs.COLOR_0 is not None:
        c = doc.accessor(attrs.COLOR_0).astype(np.float64)
        c = c.reshape(v, -1)
        colors = np.concatenate([c, np.ones((v, 1))], axis=1) if c.shape[1] == 3 else c[:, :4]
    texcoords = {}
    for k in range(4):
        tc = vertex_attr(f"TEXCOORD_{k}", 2)
        if tc is not None:
            texcoords[k] = tc
    joints, weights = [], []
    for k in range(8):
        j_idx = getattr(attrs, f"JOINTS_{k}", None)
        w_idx = getattr(attrs, f"WEIGHTS_{k}", None)
        if j_idx is None or w_idx is None:
            break
        joints.append(doc.accessor(j_idx).astype(np.int64).reshape(v, 4))
        weights.append(doc.accessor(w_idx).astype(np.float64).reshape(v, 4))
    target_pos, target_nrm = [], []
    for t in p.targets or []:
        t = t if isinstance(t, dict) else t.__dict__
        dp = t.get("POSITION")
        target_pos.append(doc.accessor(dp).astype(np.float64).reshape(v, 3) if dp is not None else np.zeros((v, 3)))
        dn = t.get("NORMAL")
        target_nrm.append(doc.accessor(dn).astype(np.float64).reshape(v, 3) if dn is not None else None)
    return Primitive(positions=pos, indices=tris, normals=nrm, colors=colors, texcoords=texcoords,
                     joints=np.concatenate(joints, axis=1) if joints else None,
                     weights=np.concatenate(weights, axis=1) if weights else None,
                     target_positions=target_pos, target_normals=target_nrm,
                     material=_material(doc, p.material))


def build_scene(doc: GltfDocument) -> Scene:
    """Turn a parsed document into a :class:`Scene` (raises :class:`AssetError`)."""
    g = doc.gltf
    nodes = []
    raw_nodes = doc.raw.get("nodes") or []
    for i, n in enumerate(g.nodes or []):
        raw_weights = raw_nodes[i].get("weights") if i < len(raw_nodes) and isinstance(raw_nodes[i], dict) else None
        matrix = None
        if n.matrix is not None and len(n.matrix) == 16:
            matrix = np.asarray(n.matrix, dtype=np.float64).reshape(4, 4).T  # column-major
        nodes.append(Node(
            name=n.name or f"node{i}", children=list(n.children or []), matrix=matrix,
            translation=np.asarray(n.translation if n.translation is not None else [0, 0, 0], dtype=np.float64),
            rotation=np.asarray(n.rotation if n.rotation is not None else [0, 0, 0, 1], dtype=np.float64),
            scale=np.asarray(n.scale if n.scale is not None else [1, 1, 1], dtype=np.float64),
            mesh=n.mesh, skin=n.skin, weights=None if raw_weights is None else np.asarray(raw_weights, dtype=np.float64)))
    for i, n in enumerate(nodes):
        for c in n.children:
            if not 0 <= c < len(nodes):
                raise AssetError("corrupt", f"node {i} has child {c}, which does not exist")
        if n.mesh is not None and not 0 <= n.mesh < len(g.meshes or []):
            raise AssetError("corrupt", f"node {i} uses mesh {n.mesh}, which does not exist")
        if n.skin is not None and not 0 <= n.skin < len(g.skins or []):
            raise AssetError("corrupt", f"node {i} uses skin {n.skin}, which does not exist")
    if g.scenes:
        scene_index = g.scene if g.scene is not None and 0 <= g.scene < len(g.scenes) else 0
        roots = list(g.scenes[scene_index].nodes or [])
    else:
        children = {c for n in nodes for c in n.children}
        roots = [i for i in range(len(nodes)) if i not in children]
    # cycle / multiple-parent check
    seen, stack = set(), list(roots)
    while stack:
        i = stack.pop()
        if not 0 <= i < len(nodes):
            raise AssetError("corrupt", f"scene refers to node {i}, which does not exist")
        if i in seen:
            raise AssetError("corrupt", f"node {i} is reached twice: the node hierarchy is not a tree")
        seen.add(i)
        stack.extend(nodes[i].children)
    meshes = []
    for mi, m in enumerate(g.meshes or []):
        prims = [p for p in (_primitive(doc, p, mi) for p in m.primitives or []) if p is not None]
        n_targets = max((len(p.target_positions) for p in prims), default=0)
        weights = np.asarray(m.weights if m.weights else [0.0] * n_targets, dtype=np.float64)
        meshes.append(Mesh(prims, weights))
    skins = []
    for si, s in enumerate(g.skins or []):
        joints = list(s.joints or [])
        if any(not 0 <= j < len(nodes) for j in joints):
            raise AssetError("corrupt", f"skin {si} lists a joint node that does not exist")
        if s.inverseBindMatrices is not None:
            ibm = doc.accessor(s.inverseBindMatrices).astype(np.float64).reshape(-1, 4, 4).transpose(0, 2, 1)
            if len(ibm) < len(joints):
                raise AssetError("corrupt", f"skin {si}: {len(ibm)} inverse bind matrices for {len(joints)} joints")
        else:
            ibm = np.tile(np.eye(4), (len(joints), 1, 1))
        skins.append(Skin(joints, ibm[: len(joints)]))
    for n in nodes:  # joint indices of skinned primitives must address the skin
        if n.skin is not None and n.mesh is not None:
            for p in meshes[n.mesh].primitives:
                if p.joints is not None and p.joints.size and p.joints.max() >= len(skins[n.skin].joints):
                    raise AssetError("accessor_out_of_range", f"JOINTS index {int(p.joints.max())} >= {len(skins[n.skin].joints)} joints")
    animations = []
    for ai, a in enumerate(g.animations or []):
        channels = []
        for ci, ch in enumerate(a.channels or []):
            tgt = ch.target
            if tgt is None or tgt.node is None or tgt.path not in ("translation", "rotation", "scale", "weights"):
                continue
            if not 0 <= tgt.node < len(nodes) or not 0 <= ch.sampler < len(a.samplers or []):
                raise AssetError("corrupt", f"animation {ai} channel {ci} refers to a missing node or sampler")
            smp = a.samplers[ch.sampler]
            if tgt.path == "weights":
                mesh = nodes[tgt.node].mesh
                width = len(meshes[mesh].weights) if mesh is not None else 0
            else:
                width = 4 if tgt.path == "rotation" else 3
            sampler = Sampler.from_accessors(doc.accessor(smp.input), doc.accessor(smp.output), smp.interpolation, width,
                                             f"animation {ai} channel {ci}")
            channels.append(Channel(tgt.node, tgt.path, sampler))
        if channels:
            animations.append(Animation(a.name or f"animation{ai}", channels))
    extras = (doc.raw.get("asset") or {}).get("extras") if isinstance(doc.raw, dict) else None
    scene = Scene(nodes, roots, meshes, skins, animations, asset_extras=dict(extras) if isinstance(extras, dict) else {})
    scene.select_animation("longest")
    return scene


def load_scene(path, animation: Union[str, int] = "longest") -> Scene:
    """Load a .glb/.gltf file into a posable :class:`Scene` with the chosen animation selected."""
    scene = build_scene(load_document(path))
    if scene.animations:
        scene.select_animation(animation)
    return scene
