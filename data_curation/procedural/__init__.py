"""Procedural animated glTF assets: the embedded default data source of Diffusion4D.

Public API:
    generate_assets(output_dir, count, seed) -> list[ProceduralAsset]
    MOTION_FAMILIES: the motion families, cycled over asset indices.
    sample_asset_spec(seed, index) -> AssetSpec, caption_for(spec), build_asset_glb(spec) -> bytes

See docs/procedural_assets.md.
"""

from .assets import MOTION_FAMILIES, asset_uid, build_asset_glb, caption_for, sample_asset_spec
from .generator import CAPTIONS_FILE, METADATA_FILE, ProceduralAsset, generate_assets
from .spec import AssetSpec

__all__ = [
    "MOTION_FAMILIES", "AssetSpec", "CAPTIONS_FILE", "METADATA_FILE", "ProceduralAsset",
    "asset_uid", "build_asset_glb", "caption_for", "generate_assets", "sample_asset_spec",
]
