"""Parse a glTF 2.0 file (``.glb`` or ``.gltf``) into plain numpy structures.

pygltflib gives the typed JSON objects; everything that touches bytes is ours, so that every
defect of a file becomes an :class:`AssetError` with a specific kind:

* GLB container: magic, version, declared length vs file size, chunk bounds (``truncated``),
  JSON chunk that does not parse (``corrupt``);
* buffers: GLB binary chunk, data URIs, external files (``missing_buffer``);
* accessors: every read is bounds-checked against its bufferView and buffer
  (``accessor_out_of_range``), sparse accessors supported, normalised integers converted;
* images: embedded (bufferView), data URIs or external files (``missing_texture``).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import AssetError

_COMPONENT_DTYPE = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_TYPE_SIZE = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALISED_SCALE = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0, np.uint32: 4294967295.0}
_GLB_MAGIC, _CHUNK_JSON, _CHUNK_BIN = b"glTF", 0x4E4F534A, 0x004E4942
SUPPORTED_REQUIRED_EXTENSIONS = {"KHR_materials_pbrSpecularGlossiness", "KHR_materials_unlit", "KHR_texture_transform",
                                 "KHR_mesh_quantization", "KHR_materials_emissive_strength"}


@dataclass
class GltfDocument:
    """A parsed file: the pygltflib object, its buffers as bytes, and where relative URIs resolve."""

    gltf: "object"  # pygltflib.GLTF2
    buffers: List[bytes]
    base_dir: Path
    path: Path
    raw: dict = field(default_factory=dict)  # the JSON as parsed (fields pygltflib drops, e.g. node.weights)
    _images: Dict[int, np.ndarray] = field(default_factory=dict)

    # ------------------------------------------------------------------ accessors
    def accessor(self, index: int) -> np.ndarray:
        """Accessor ``index`` as [count] or [count, n] (float32 for floats and normalised ints)."""
        accessors = self.gltf.accessors
        if index is None or not 0 <= index < len(accessors):
            raise AssetError("corrupt", f"accessor index {index} does not exist ({len(accessors)} accessors)")
        acc = accessors[index]
        dtype = _COMPONENT_DTYPE.get(acc.componentType)
        width = _TYPE_SIZE.get(acc.type)
        if dtype is None or width is None:
            raise AssetError("corrupt", f"accessor {index} has componentType {acc.componentType} / type {acc.type}")
        count = int(acc.count or 0)
        if acc.bufferView is not None:
            data = self._read_view(acc.bufferView, acc.byteOffset or 0, count, dtype, width, f"accessor {index}")
        else:
            data = np.zeros((count, width), dtype=dtype)
        if acc.sparse is not None and acc.sparse.count:
            sp = acc.sparse
            idx_dtype = _COMPONENT_DTYPE.get(sp.indices.componentType)
            if idx_dtype is None:
                raise AssetError("corrupt", f"accessor {index}: sparse index componentType {sp.indices.componentType}")
            idx = self._read_view(sp.indices.bufferView, sp.indices.byteOffset or 0, sp.count, idx_dtype, 1, f"accessor {index} sparse indices")[:, 0]
            vals = self._read_view(sp.values.bufferView, sp.values.byteOffset or 0, sp.count, dtype, width, f"accessor {index} sparse values")
            if idx.size and int(idx.max()) >= count:
                raise AssetError("accessor_out_of_range", f"accessor {index}: sparse index {int(idx.max())} >= count {count}")
            data = data.copy()
            data[idx.astype(np.int64)] = vals
        if acc.normalized and dtype is not np.float32:
            data = np.maximum(data.astype(np.float32) / _NORMALISED_SCALE[dtype], -1.0)
        elif dtype is np.float32:
            data = data.astype(np.float32, copy=False)
        return data[:, 0] if width == 1 else data

    def _read_view(self, view_index: int, offset: int, count: int, dtype, width: int, what: str) -> np.ndarray:
        views = self.gltf.bufferViews
        if view_index is None or not 0 <= view_index < len(views):
            raise AssetError("corrupt", f"{what} refers to bufferView {view_index} ({len(views)} exist)")
        view = views[view_index]
        if view.buffer is None or not 0 <= view.buffer < len(self.buffers):
            raise AssetError("corrupt", f"bufferView {view_index} refers to buffer {view.buffer}")
        buf = self.buffers[view.buffer]
        v_off, v_len = int(view.byteOffset or 0), int(view.byteLength or 0)
        if v_off < 0 or v_len < 0 or v_off + v_len > len(buf):
            raise AssetError("accessor_out_of_range", f"bufferView {view_index} [{v_off}, {v_off + v_len}) exceeds buffer {view.buffer} of {len(buf)} bytes")
        item = np.dtype(dtype).itemsize
        elem = item * width
        stride = int(view.byteStride or 0) or elem
        if count == 0:
            return np.zeros((0, width), dtype=dtype)
        end = offset + (count - 1) * stride + elem
        if offset < 0 or end > v_len:
            raise AssetError("accessor_out_of_range", f"{what} needs bytes [{offset}, {end}) of bufferView {view_index} ({v_len} bytes)")
        raw = np.frombuffer(buf, dtype=np.uint8, count=v_len, offset=v_off)
        if stride == elem:
            return np.frombuffer(raw[offset:end].tobytes(), dtype=dtype).reshape(count, width)
        rows = np.lib.stride_tricks.as_strided(raw[offset:], shape=(count, elem), strides=(stride, 1))
        return np.frombuffer(np.ascontiguousarray(rows).tobytes(), dtype=dtype).reshape(count, width)

    # ------------------------------------------------------------------ images
    def image(self, index: int) -> np.ndarray:
        """Image ``index`` decoded to RGBA uint8 [H, W, 4] (cached)."""
        if index in self._images:
            return self._images[index]
        from PIL import Image

        images = self.gltf.images
        if not 0 <= index < len(images):
            raise AssetError("corrupt", f"image index {index} does not exist ({len(images)} images)")
        img = images[index]
        if img.bufferView is not None:
            view = self.gltf.bufferViews[img.bufferView]
            data = self._read_view(img.bufferView, 0, int(view.byteLength or 0), np.uint8, 1, f"image {index}").tobytes()
        elif img.uri:
            data = _read_uri(img.uri, self.base_dir, "missing_texture", f"image {index}")
        else:
            raise AssetError("corrupt", f"image {index} has neither uri nor bufferView")
        try:
            with Image.open(io.BytesIO(data)) as pil:
                array = np.asarray(pil.convert("RGBA")).copy()
        except Exception as err:  # PIL raises many types for bad data
            raise AssetError("corrupt", f"image {index} cannot be decoded ({type(err).__name__})") from None
        self._images[index] = array
        return array


def _read_uri(uri: str, base_dir: Path, missing_kind: str, what: str) -> bytes:
    if uri.startswith("data:"):
        try:
            header, payload = uri.split(",", 1)
            return base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
        except ValueError:
            raise AssetError("corrupt", f"{what}: malformed data URI") from None
    path = base_dir / urllib.parse.unquote(uri)
    if not path.is_file():
        raise AssetError(missing_kind, f"{what}: external file {uri!r} not found next to the asset")
    return path.read_bytes()


def _split_glb(data: bytes, path: Path) -> Tuple[bytes, Optional[bytes]]:
    if len(data) < 12 or data[:4] != _GLB_MAGIC:
        raise AssetError("corrupt" if len(data) >= 12 else "truncated", f"{path.name} is not a GLB file (bad header)")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise AssetError("unsupported", f"GLB version {version} (only glTF 2.0)")
    if length > len(data):
        raise AssetError("truncated", f"GLB header declares {length} bytes, file has {len(data)}")
    pos, json_chunk, bin_chunk = 12, None, None
    while pos < length:
        if pos + 8 > length:
            raise AssetError("truncated", f"GLB chunk header at byte {pos} is cut off")
        chunk_len, chunk_type = struct.unpack_from("<II", data, pos)
        if pos + 8 + chunk_len > length:
            raise AssetError("truncated", f"GLB chunk at byte {pos} declares {chunk_len} bytes past the end of the file")
        chunk = data[pos + 8: pos + 8 + chunk_len]
        if chunk_type == _CHUNK_JSON and json_chunk is None:
            json_chunk = chunk
        elif chunk_type == _CHUNK_BIN and bin_chunk is None:
            bin_chunk = chunk
        pos += 8 + chunk_len
    if json_chunk is None:
        raise AssetError("corrupt", "GLB has no JSON chunk")
    return json_chunk, bin_chunk


def load_document(path) -> GltfDocument:
    """Read ``path`` (.glb or .gltf) and all its buffers. Raises :class:`AssetError`."""
    import pygltflib

    path = Path(path)
    if not path.is_file():
        raise AssetError("missing_file", f"{path} does not exist")
    data = path.read_bytes()
    if data[:4] == _GLB_MAGIC or path.suffix.lower() == ".glb":
        json_bytes, bin_chunk = _split_glb(data, path)
    else:
        json_bytes, bin_chunk = data, None
    try:
        as_dict = json.loads(json_bytes.decode("utf-8").rstrip(" \x00"))
        if not isinstance(as_dict, dict):
            raise ValueError("top level is not an object")
        gltf = pygltflib.GLTF2.from_json(json.dumps(as_dict))
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError) as err:
        raise AssetError("corrupt", f"JSON does not parse ({type(err).__name__}: {str(err)[:80]})") from None
    version = str(getattr(gltf.asset, "version", "2.0") or "2.0")
    if not version.startswith("2"):
        raise AssetError("unsupported", f"glTF version {version} (only 2.0)")
    unsupported = sorted(set(gltf.extensionsRequired or []) - SUPPORTED_REQUIRED_EXTENSIONS)
    if unsupported:
        raise AssetError("unsupported", f"required extension(s) {', '.join(unsupported)}")
    buffers: List[bytes] = []
    for i, buf in enumerate(gltf.buffers or []):
        if buf.uri is None:
            if bin_chunk is None:
                raise AssetError("missing_buffer", f"buffer {i} has no uri and the file has no binary chunk")
            content = bin_chunk
        else:
            content = _read_uri(buf.uri, path.parent, "missing_buffer", f"buffer {i}")
        if buf.byteLength is not None and len(content) < buf.byteLength:
            raise AssetError("truncated", f"buffer {i} has {len(content)} bytes, declares {buf.byteLength}")
        buffers.append(content)
    return GltfDocument(gltf=gltf, buffers=buffers, base_dir=path.parent, path=path, raw=as_dict)
