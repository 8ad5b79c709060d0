"""A minimal raw glTF writer for crafted test assets (good and deliberately broken ones).

Unlike a validating builder it writes exactly what it is told: tests use it to make truncated
GLBs, out-of-range accessors, NaN positions, missing external files and so on.

Example::

    c = GltfCraft()
    mesh = c.add_mesh(positions, indices, color=(1, 0, 0, 1))
    node = c.add_node(mesh=mesh)
    c.add_animation([(node, "rotation", times, quats, "LINEAR")])
    Path("a.glb").write_bytes(c.to_glb())
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

_COMPONENT = {np.dtype(np.float32): 5126, np.dtype(np.uint8): 5121, np.dtype(np.uint16): 5123, np.dtype(np.uint32): 5125}
_TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


class GltfCraft:
    def __init__(self) -> None:
        self.doc: Dict[str, Any] = {"asset": {"version": "2.0", "generator": "diffusion4d craft"}, "scene": 0,
                                    "scenes": [{"nodes": []}], "nodes": [], "meshes": [], "materials": [],
                                    "accessors": [], "bufferViews": [], "buffers": [], "animations": []}
        self.blob = bytearray()

    def view(self, data: bytes) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray, matrix: bool = False, normalized: bool = False, minmax: bool = False) -> int:
        array = np.ascontiguousarray(array)
        width = 1 if array.ndim == 1 else array.shape[1]
        acc = {"bufferView": self.view(array.tobytes()), "componentType": _COMPONENT[array.dtype],
               "count": int(array.shape[0]), "type": "MAT4" if matrix else _TYPE[width]}
        if normalized:
            acc["normalized"] = True
        if minmax:
            flat = array.reshape(len(array), -1)
            acc["min"], acc["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def add_material(self, color=(0.8, 0.8, 0.8, 1.0), texture_png: Optional[bytes] = None, texture_uri: Optional[str] = None,
                     alpha_mode: str = "OPAQUE", double_sided: bool = False) -> int:
        pbr: Dict[str, Any] = {"baseColorFactor": list(map(float, color)), "metallicFactor": 0.0}
        if texture_png is not None or texture_uri is not None:
            img = {"uri": texture_uri} if texture_uri else {"bufferView": self.view(texture_png), "mimeType": "image/png"}
            self.doc.setdefault("images", []).append(img)
            self.doc.setdefault("samplers", [{"magFilter": 9728, "minFilter": 9728, "wrapS": 33071, "wrapT": 33071}])
            self.doc.setdefault("textures", []).append({"source": len(self.doc["images"]) - 1, "sampler": 0})
            pbr["baseColorTexture"] = {"index": len(self.doc["textures"]) - 1}
        self.doc["materials"].append({"pbrMetallicRoughness": pbr, "alphaMode": alpha_mode, "doubleSided": double_sided})
        return len(self.doc["materials"]) - 1

    def add_mesh(self, positions, indices, normals=None, uvs=None, colors=None, material: Optional[int] = None,
                 joints=None, weights=None, targets: Sequence[np.ndarray] = (), target_weights=None) -> int:
        attrs = {"POSITION": self.accessor(np.asarray(positions, np.float32), minmax=True)}
        if normals is not None:
            attrs["NORMAL"] = self.accessor(np.asarray(normals, np.float32))
        if uvs is not None:
            attrs["TEXCOORD_0"] = self.accessor(np.asarray(uvs, np.float32))
        if colors is not None:
            attrs["COLOR_0"] = self.accessor(np.asarray(colors, np.float32))
        if joints is not None:
            j = np.asarray(joints)
            for k in range(j.shape[1] // 4):
                attrs[f"JOINTS_{k}"] = self.accessor(j[:, 4 * k: 4 * k + 4].astype(np.uint16))
                attrs[f"WEIGHTS_{k}"] = self.accessor(np.asarray(weights, np.float32)[:, 4 * k: 4 * k + 4])
        prim: Dict[str, Any] = {"attributes": attrs, "mode": 4}
        if indices is not None:
            prim["indices"] = self.accessor(np.asarray(indices, np.uint32).reshape(-1))
        if material is not None:
            prim["material"] = material
        mesh: Dict[str, Any] = {"primitives": [prim]}
        if len(targets):
            prim["targets"] = [{"POSITION": self.accessor(np.asarray(t, np.float32))} for t in targets]
            mesh["weights"] = list(target_weights) if target_weights is not None else [0.0] * len(targets)
        self.doc["meshes"].append(mesh)
        return len(self.doc["meshes"]) - 1

    def add_node(self, mesh: Optional[int] = None, parent: Optional[int] = None, translation=None, rotation=None,
                 scale=None, matrix=None, skin: Optional[int] = None) -> int:
        node: Dict[str, Any] = {}
        for key, val in (("mesh", mesh), ("skin", skin)):
            if val is not None:
                node[key] = val
        for key, val in (("translation", translation), ("rotation", rotation), ("scale", scale), ("matrix", matrix)):
            if val is not None:
                node[key] = [float(x) for x in np.asarray(val).reshape(-1)]
        self.doc["nodes"].append(node)
        idx = len(self.doc["nodes"]) - 1
        if parent is None:
            self.doc["scenes"][0]["nodes"].append(idx)
        else:
            self.doc["nodes"][parent].setdefault("children", []).append(idx)
        return idx

    def add_skin(self, joints: List[int], inverse_bind: np.ndarray) -> int:
        ibm = np.ascontiguousarray(np.transpose(inverse_bind, (0, 2, 1)).reshape(-1, 16), dtype=np.float32)
        self.doc.setdefault("skins", []).append({"joints": list(joints), "inverseBindMatrices": self.accessor(ibm, matrix=True)})
        return len(self.doc["skins"]) - 1

    def add_animation(self, tracks: Sequence[Tuple[int, str, np.ndarray, np.ndarray, str]], name: str = "anim") -> int:
        """tracks: (node, path, times [K], values [K, n] or [3K, n] for CUBICSPLINE, interpolation)."""
        anim: Dict[str, Any] = {"name": name, "samplers": [], "channels": []}
        for node, path, times, values, interp in tracks:
            anim["samplers"].append({"input": self.accessor(np.asarray(times, np.float32), minmax=True),
                                     "output": self.accessor(np.asarray(values, np.float32)), "interpolation": interp})
            anim["channels"].append({"sampler": len(anim["samplers"]) - 1, "target": {"node": node, "path": path}})
        self.doc["animations"].append(anim)
        return len(self.doc["animations"]) - 1

    def _finish(self, uri: Optional[str]) -> Dict[str, Any]:
        doc = json.loads(json.dumps(self.doc))
        doc["buffers"] = [{"byteLength": len(self.blob)} | ({"uri": uri} if uri else {})]
        return {k: v for k, v in doc.items() if v != [] or k in ("nodes",)}

    def to_glb(self) -> bytes:
        js = json.dumps(self._finish(None)).encode()
        js += b" " * (-len(js) % 4)
        blob = bytes(self.blob) + b"\0" * (-len(self.blob) % 4)
        body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(blob), 0x004E4942) + blob
        return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body

    def write_gltf(self, path, bin_name: Optional[str] = None) -> Path:
        """Write ``path`` (.gltf) with an external ``.bin`` (or a data URI when ``bin_name`` is ``"data"``)."""
        import base64

        path = Path(path)
        if bin_name == "data":
            uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(self.blob)).decode()
        else:
            bin_name = bin_name or path.with_suffix(".bin").name
            (path.parent / bin_name).write_bytes(bytes(self.blob))
            uri = bin_name
        path.write_text(json.dumps(self._finish(uri)))
        return path


def cube(size: float = 1.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat-shaded cube centred at the origin: positions [24, 3], normals [24, 3], indices [12, 3]."""
    h = size / 2.0
    pos, nrm, idx = [], [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            n = np.zeros(3)
            n[axis] = sign
            u, v = np.roll(np.eye(3), -1, axis=0)[axis], np.roll(np.eye(3), -2, axis=0)[axis]
            if sign < 0:
                u, v = v, u
            base = len(pos)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                pos.append(h * (n + a * u + b * v))
                nrm.append(n)
            idx += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.asarray(pos), np.asarray(nrm), np.asarray(idx)
