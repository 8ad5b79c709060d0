"""A thin builder over pygltflib that packs numpy arrays into one GLB binary chunk.

It owns the bookkeeping the Khronos validator checks: 4-byte aligned buffer views, the right
bufferView targets and strides for vertex attributes, exact min/max on POSITION and on
animation inputs, and sampler outputs laid out per interpolation mode.
"""

from __future__ import annotations

import numpy as np
import pygltflib as gl

from .geometry import MeshData
from .keyframes import Track

_COMPONENT = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint8): gl.UNSIGNED_BYTE,
              np.dtype(np.uint16): gl.UNSIGNED_SHORT, np.dtype(np.uint32): gl.UNSIGNED_INT}
_TYPE = {1: gl.SCALAR, 2: gl.VEC2, 3: gl.VEC3, 4: gl.VEC4, 16: gl.MAT4}
_LINEAR, _LINEAR_MIPMAP_LINEAR, _REPEAT = 9729, 9987, 10497


class GlbBuilder:
    """Accumulates glTF objects and their binary data; :meth:`to_glb` serialises them."""

    def __init__(self, generator: str = "Diffusion4D procedural assets") -> None:
        self.gltf = gl.GLTF2(asset=gl.Asset(generator=generator, version="2.0"))
        self._blob = bytearray()
        self._time_accessors: dict[bytes, int] = {}

    # -- raw data -------------------------------------------------------------------------
    def add_view(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        """Append bytes as a new bufferView (4-byte aligned); return its index."""
        self._blob += b"\0" * (-len(self._blob) % 4)
        view = gl.BufferView(buffer=0, byteOffset=len(self._blob), byteLength=len(data),
                             target=target, byteStride=stride)
        self._blob += data
        self.gltf.bufferViews.append(view)
        return len(self.gltf.bufferViews) - 1

    def add_accessor(self, array: np.ndarray, target: int | None = None, vertex: bool = False,
                     bounds: bool = False, matrix: bool = False) -> int:
        """Store ``array`` ([count] or [count, C]) in its own bufferView behind an accessor.

        Args:
            target: bufferView target (ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER) or None.
            vertex: vertex attribute; sets an explicit byteStride.
            bounds: write exact per-component min/max.
            matrix: [count, 16] column-major matrices -> MAT4.
        """
        array = np.ascontiguousarray(array)
        count = array.shape[0]
        width = 1 if array.ndim == 1 else array.shape[1]
        stride = width * array.itemsize if vertex else None
        view = self.add_view(array.tobytes(), target=target, stride=stride)
        accessor = gl.Accessor(bufferView=view, byteOffset=0, componentType=_COMPONENT[array.dtype],
                               count=count, type=gl.MAT4 if matrix else _TYPE[width])
        if bounds:
            flat = array.reshape(count, -1)
            cast = float if array.dtype == np.float32 else int
            accessor.min = [cast(x) for x in flat.min(axis=0)]
            accessor.max = [cast(x) for x in flat.max(axis=0)]
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1

    # -- materials ------------------------------------------------------------------------
    def add_material(self, name: str, base_color: list[float], texture_png: bytes | None = None,
                     roughness: float = 0.7) -> int:
        """A metallic-free PBR material, optionally with an embedded PNG base-colour texture."""
        pbr = gl.PbrMetallicRoughness(baseColorFactor=list(base_color) + [1.0], metallicFactor=0.0,
                                      roughnessFactor=roughness)
        if texture_png is not None:
            if not self.gltf.samplers:
                self.gltf.samplers.append(gl.Sampler(magFilter=_LINEAR, minFilter=_LINEAR_MIPMAP_LINEAR,
                                                     wrapS=_REPEAT, wrapT=_REPEAT))
            image_view = self.add_view(texture_png)
            self.gltf.images.append(gl.Image(bufferView=image_view, mimeType="image/png", name=name))
            self.gltf.textures.append(gl.Texture(sampler=0, source=len(self.gltf.images) - 1))
            pbr.baseColorTexture = gl.TextureInfo(index=len(self.gltf.textures) - 1)
            pbr.baseColorFactor = [1.0, 1.0, 1.0, 1.0]
        self.gltf.materials.append(gl.Material(name=name, pbrMetallicRoughness=pbr))
        return len(self.gltf.materials) - 1

    # -- meshes ---------------------------------------------------------------------------
    def add_mesh(self, name: str, mesh: MeshData, material: int,
                 joints: np.ndarray | None = None, weights: np.ndarray | None = None,
                 targets: list[np.ndarray] | None = None) -> int:
        """One-primitive triangle mesh.

        Args:
            joints: uint8 [N, 4] skin joint indices (JOINTS_0), with ``weights`` float32 [N, 4].
            targets: list of float32 [N, 3] morph POSITION deltas; default weights are 0.
        """
        vb = gl.ARRAY_BUFFER
        attrs = gl.Attributes(
            POSITION=self.add_accessor(mesh.positions, vb, vertex=True, bounds=True),
            NORMAL=self.add_accessor(mesh.normals, vb, vertex=True),
            TEXCOORD_0=self.add_accessor(mesh.uvs, vb, vertex=True))
        if joints is not None:
            attrs.JOINTS_0 = self.add_accessor(joints.astype(np.uint8), vb, vertex=True)
            attrs.WEIGHTS_0 = self.add_accessor(weights.astype(np.float32), vb, vertex=True)
        index_type = np.uint16 if mesh.num_vertices < 65535 else np.uint32
        indices = self.add_accessor(mesh.indices.reshape(-1).astype(index_type),
                                    gl.ELEMENT_ARRAY_BUFFER)
        primitive = gl.Primitive(attributes=attrs, indices=indices, material=material,
                                 mode=gl.TRIANGLES)
        gl_mesh = gl.Mesh(name=name, primitives=[primitive])
        if targets:
            primitive.targets = [gl.Attributes(POSITION=self.add_accessor(
                d.astype(np.float32), vb, vertex=True, bounds=True)) for d in targets]
            gl_mesh.weights = [0.0] * len(targets)
        self.gltf.meshes.append(gl_mesh)
        return len(self.gltf.meshes) - 1

    # -- scene graph ----------------------------------------------------------------------
    def add_node(self, name: str, mesh: int | None = None, translation=None, rotation=None,
                 scale=None, parent: int | None = None, skin: int | None = None) -> int:
        """Add a node (TRS only, never a matrix, so it can be animated); link it to ``parent``."""
        def as_list(v):
            return None if v is None else [float(x) for x in v]
        node = gl.Node(name=name, mesh=mesh, skin=skin, translation=as_list(translation),
                       rotation=as_list(rotation), scale=as_list(scale))
        self.gltf.nodes.append(node)
        index = len(self.gltf.nodes) - 1
        if parent is not None:
            self.gltf.nodes[parent].children.append(index)
        return index

    def add_skin(self, joints: list[int], inverse_bind: np.ndarray, skeleton: int) -> int:
        """Skin over ``joints`` with inverse bind matrices [J, 4, 4] (row-major numpy)."""
        ibm = np.ascontiguousarray(np.transpose(inverse_bind, (0, 2, 1)).reshape(-1, 16),
                                   dtype=np.float32)  # glTF stores matrices column-major
        accessor = self.add_accessor(ibm, matrix=True)
        self.gltf.skins.append(gl.Skin(joints=list(joints), inverseBindMatrices=accessor,
                                       skeleton=skeleton))
        return len(self.gltf.skins) - 1

    def add_animation(self, name: str, tracks: list[Track]) -> int:
        """One animation holding a sampler and a channel per track (key times are shared)."""
        animation = gl.Animation(name=name)
        for track in tracks:
            key = track.times.tobytes()
            if key not in self._time_accessors:
                self._time_accessors[key] = self.add_accessor(track.times, bounds=True)
            rows = track.sampler_output().astype(np.float32)
            if track.path == "weights":  # scalar outputs: one value per target per key
                rows = rows.reshape(-1)
            output = self.add_accessor(rows)
            animation.samplers.append(gl.AnimationSampler(
                input=self._time_accessors[key], output=output, interpolation=track.interpolation))
            animation.channels.append(gl.AnimationChannel(
                sampler=len(animation.samplers) - 1,
                target=gl.AnimationChannelTarget(node=track.node, path=track.path)))
        self.gltf.animations.append(animation)
        return len(self.gltf.animations) - 1

    def to_glb(self, roots: list[int]) -> bytes:
        """Serialise a single scene with ``roots`` as its root nodes to GLB bytes."""
        self.gltf.scenes = [gl.Scene(name="scene", nodes=list(roots))]
        self.gltf.scene = 0
        self._blob += b"\0" * (-len(self._blob) % 4)
        self.gltf.buffers = [gl.Buffer(byteLength=len(self._blob))]
        self.gltf.set_binary_blob(bytes(self._blob))
        return b"".join(self.gltf.save_to_bytes())
