"""Our glTF 2.0 scene and animation evaluator (on top of pygltflib's JSON objects).

``load_scene(path)`` -> :class:`Scene`; ``scene.evaluate(seconds)`` -> world-space (Z up)
:class:`DrawItem` list. Bad files raise :class:`AssetError` with a specific kind.
"""

from .animation import Animation, Channel, Sampler, hermite, slerp
from .errors import AssetError
from .loader import GltfDocument, load_document
from ..transforms import quat_to_matrix, trs_matrix
from .scene import DrawItem, Material, Scene, build_scene, load_scene, skin_vertices, skin_vertices_reference

__all__ = [
    "Animation", "AssetError", "Channel", "DrawItem", "GltfDocument", "Material", "Sampler", "Scene", "build_scene",
    "hermite", "load_document", "load_scene", "quat_to_matrix", "skin_vertices", "skin_vertices_reference", "slerp", "trs_matrix",
]
