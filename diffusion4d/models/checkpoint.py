"""The Diffusion4D checkpoint folder (a diffusers pipeline layout), written by the trainer.

Layout::

    <folder>/model_index.json        {"_class_name": "Diffusion4DPipeline", "_diffusers_version": ...,
                                      "unet": ["diffusion4d", "UNet4DConditionModel"],
                                      "vae": ["diffusers", "AutoencoderKL"] | [null, null],
                                      "text_encoder": [lib, class], "tokenizer": [lib, class],
                                      "scheduler": ["diffusers", class],
                                      "image_encoder": [..] | [null, null], "prior_unet": [..] | [null, null]}
    <folder>/<component>/...         save_pretrained of every non-null component (safetensors)
    <folder>/training_config.yaml    the resolved training config

``Diffusion4DPipeline.from_pretrained(folder)`` reads it; :func:`load_components` is the
pipeline-free reader (training tests, tools).
"""

from __future__ import annotations

import importlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Union

from diffusion4d.errors import UserError
from diffusion4d.io import atomic_write_json, read_json

PathLike = Union[str, os.PathLike]
MODEL_INDEX = "model_index.json"
TRAINING_CONFIG = "training_config.yaml"
PIPELINE_CLASS = "Diffusion4DPipeline"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder", "prior_unet")


def _library_of(obj: Any) -> str:
    module = type(obj).__module__.split(".")[0]
    return module if module in ("diffusers", "transformers", "diffusion4d") else module


def save_pipeline_folder(
    folder: PathLike,
    *,
    unet,
    scheduler,
    text_encoder,
    tokenizer,
    vae=None,
    image_encoder=None,
    prior_unet=None,
    training_config: Any = None,
    atomic: bool = True,
) -> Path:
    """Write the checkpoint folder; with ``atomic`` it is built under a temporary name and renamed.

    Args:
        folder: destination (replaced if it exists).
        unet: the :class:`UNet4DConditionModel` (unwrapped, e.g. ``accelerator.unwrap_model``).
        scheduler, text_encoder, tokenizer, vae, image_encoder, prior_unet: pipeline components
            (None -> ``[null, null]`` in ``model_index.json``); a path instead of a model is a
            saved model folder whose files are hard-linked in (the frozen prior of stage 2).
        training_config: a config dataclass or mapping, saved as ``training_config.yaml``.
    """
    import diffusers
    import yaml

    from diffusion4d.config import config_to_dict

    folder = Path(folder)
    target = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}") if atomic else folder
    target.mkdir(parents=True, exist_ok=True)
    try:
        parts = dict(
            unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
            scheduler=scheduler, image_encoder=image_encoder, prior_unet=prior_unet,
        )
        index: Dict[str, Any] = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
        for name, obj in parts.items():
            if obj is None:
                index[name] = [None, None]
                continue
            if isinstance(obj, (str, os.PathLike)):  # an already saved model folder: hard-link (or copy) its files
                index[name] = _link_model_folder(Path(obj), target / name)
                continue
            library = "diffusion4d" if type(obj).__name__ == "UNet4DConditionModel" else _library_of(obj)
            index[name] = [library, type(obj).__name__]
            if hasattr(obj, "save_pretrained"):
                kwargs = {"safe_serialization": True} if name not in ("tokenizer", "scheduler") else {}
                obj.save_pretrained(str(target / name), **kwargs)
            else:
                obj.save_config(str(target / name))
        atomic_write_json(target / MODEL_INDEX, index)
        if training_config is not None:
            data = training_config if isinstance(training_config, dict) else config_to_dict(training_config)
            (target / TRAINING_CONFIG).write_text(yaml.safe_dump(data, sort_keys=False))
        if atomic:
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
                os.replace(folder, old)
                os.replace(target, folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(target, folder)
    except BaseException:
        if atomic:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return folder


def _link_model_folder(source: Path, destination: Path) -> list:
    """Hard-link the files of a saved model folder into ``destination`` (a copy where links are not
    possible, e.g. across file systems) -> its ``[library, class]`` entry for ``model_index.json``.

    A stage-2 checkpoint carries its frozen stage-1 prior this way: one copy on disk for the whole
    run, however many checkpoints hold it, and every checkpoint folder stays self-contained."""
    config = read_json(source / "config.json")
    class_name = config.get("_class_name")
    if not class_name:
        raise UserError(f"{source}/config.json names no _class_name: not a saved diffusers model folder")
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file():
            try:
                os.link(path, destination / path.name)
            except OSError:
                shutil.copy2(path, destination / path.name)
    library = "diffusion4d" if class_name == "UNet4DConditionModel" else "diffusers"
    return [library, class_name]


def read_model_index(folder: PathLike) -> Dict[str, Any]:
    """``model_index.json`` of a checkpoint folder (clear error when it is not one)."""
    path = Path(folder) / MODEL_INDEX
    if not path.is_file():
        raise UserError(f"{folder} is not a Diffusion4D checkpoint folder (no {MODEL_INDEX})")
    return read_json(path)


def _resolve_class(library: str, class_name: str):
    if library == "diffusion4d":
        from diffusion4d.models.unet_4d import UNet4DConditionModel

        if class_name == "UNet4DConditionModel":
            return UNet4DConditionModel
    module = importlib.import_module(library)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise UserError(f"model_index.json names {library}.{class_name}, which does not exist") from None


def load_components(folder: PathLike, device=None, torch_dtype=None, components=COMPONENTS) -> Dict[str, Any]:
    """Load the components of a checkpoint folder -> ``{name: object or None}``.

    Models go to ``device``/``torch_dtype`` when given and are put in eval mode.
    """
    folder = Path(folder)
    index = read_model_index(folder)
    out: Dict[str, Any] = {}
    for name in components:
        library, class_name = index.get(name, [None, None])
        if library is None:
            out[name] = None
            continue
        cls = _resolve_class(library, class_name)
        if hasattr(cls, "from_pretrained"):
            obj = cls.from_pretrained(str(folder / name))
        else:
            obj = cls.from_config(cls.load_config(str(folder / name)))
        if hasattr(obj, "eval") and hasattr(obj, "to"):
            obj = obj.to(device=device, dtype=torch_dtype) if (device or torch_dtype) else obj
            obj.eval()
        out[name] = obj
    return out


def checkpoint_info(model_dir: PathLike) -> Dict[str, Any]:
    """What a checkpoint can do, read from its configs without loading weights: the conditioning
    flags, frames, frame size, and whether it carries a frozen prior (``has_prior``)."""
    import json

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    index_path = model_dir / "model_index.json"
    unet_config = model_dir / "unet" / "config.json"
    if not index_path.is_file() or not unet_config.is_file():
        raise UserError(f"{model_dir} is not a Diffusion4D checkpoint (needs model_index.json and unet/config.json)")
    try:
        index = json.loads(index_path.read_text())
        unet = json.loads(unet_config.read_text())
        vae_factor = 1
        if (index.get("vae") or [None])[0] is not None:
            vae = json.loads((model_dir / "vae" / "config.json").read_text())
            vae_factor = 2 ** (len(vae.get("block_out_channels", [0])) - 1)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the configs of {model_dir}: {err}") from None
    sample_size = unet.get("sample_size")
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    return {
        "static_conditioning": bool(unet.get("static_conditioning", False)),
        "image_conditioning": bool(unet.get("image_conditioning", False)),
        "motion_conditioning": bool(unet.get("motion_conditioning", False)),
        "num_frames": int(unet.get("num_frames", 16)),
        "resolution": int(sample_size * vae_factor) if sample_size else None,
        "has_prior": (index.get("prior_unet") or [None])[0] is not None,
    }


def read_training_config(folder: PathLike) -> Optional[Dict[str, Any]]:
    """The ``training_config.yaml`` of a checkpoint folder as a mapping (None when absent)."""
    import yaml

    path = Path(folder) / TRAINING_CONFIG
    return yaml.safe_load(path.read_text()) if path.is_file() else None
