"""Models: the 4D-aware video UNet, latent encoding, text encoding and the checkpoint layout."""

from diffusion4d.models.checkpoint import load_components, read_model_index, save_pipeline_folder
from diffusion4d.models.latents import decode_latents, encode_frames
from diffusion4d.models.text import encode_prompts, load_text_stack, minilm_path
from diffusion4d.models.unet_4d import UNet4DConditionModel

__all__ = [
    "UNet4DConditionModel",
    "decode_latents",
    "encode_frames",
    "encode_prompts",
    "load_components",
    "load_text_stack",
    "minilm_path",
    "read_model_index",
    "save_pipeline_folder",
]
