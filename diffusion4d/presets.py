"""Shipped YAML presets (the repository's ``configs/`` folder) found by name or path.

``configs/`` is installed as the package data of ``diffusion4d.configs`` (``setup.py`` maps the
folder there), so a wheel install finds ``--preset paper`` or ``--config t2v`` exactly like a
source checkout, through :mod:`importlib.resources` rather than a path relative to this file.

One rule for every command: a value that names an existing file is that file; otherwise it is the
name of a shipped preset of the stage (``configs/<stage>/<name>.yaml``, with or without the
``.yaml``). An unknown name is a one-line error listing the shipped ones.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import List, Union

from diffusion4d.errors import UserError

PACKAGE = "diffusion4d.configs"
STAGES = ("accelerate", "curation", "deepspeed", "demo", "generate", "recon", "train")


def presets_root() -> Path:
    """The folder holding the shipped presets (``<stage>/<name>.yaml``)."""
    installed = resources.files("diffusion4d") / "configs"  # a wheel install: diffusion4d/configs/ inside the package
    if installed.is_dir():
        return Path(str(installed))
    checkout = Path(__file__).resolve().parent.parent / "configs"  # a source tree that was not installed
    if checkout.is_dir():
        return checkout
    raise UserError(f"the shipped presets ({PACKAGE}) are not installed: reinstall diffusion4d")


def list_presets(stage: str) -> List[str]:
    """Names of the shipped presets of ``stage``."""
    folder = presets_root() / stage
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def resolve_preset(stage: str, name_or_path: Union[str, os.PathLike]) -> Path:
    """An existing file path as is, else the shipped preset ``configs/<stage>/<name>.yaml``."""
    if stage not in STAGES:
        raise ValueError(f"unknown preset stage {stage!r}; valid: {', '.join(STAGES)}")
    value = str(name_or_path)
    path = Path(value)
    if path.is_file():
        return path
    # a name, or a path into the repository's configs/ used away from a checkout (configs/train/t2v.yaml)
    name = path.stem if path.suffix in (".yaml", ".yml") else value
    shipped = presets_root() / stage / f"{name}.yaml"
    if shipped.is_file() and (path.parent == Path(".") or path.parent.name == stage):
        return shipped
    if path.parent != Path(".") or path.suffix:
        raise UserError(f"preset file not found: {value}")
    raise UserError(f"unknown {stage} preset {value!r}: not a file, and the shipped ones are {', '.join(list_presets(stage)) or 'none'}")


__all__ = ["list_presets", "presets_root", "resolve_preset"]
