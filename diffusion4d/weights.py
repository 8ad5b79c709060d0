"""Where the pretrained networks behind the metrics come from.

No pretrained network can be downloaded by this code path on its own: CLIP, the LPIPS backbone
and I3D are looked up, in this order, in

1. ``--weights-dir DIR`` (the file itself, or one folder level below it),
2. the folder named by the environment variable ``DIFFUSION4D_WEIGHTS`` (same rule),
3. the torch hub cache (``$TORCH_HOME/hub/checkpoints``, where ``torch.hub`` / torchvision put
   downloads), and ``~/.cache/diffusion4d``,
4. for CLIP only: a Hugging Face hub id (``--clip-model``), from the local HF cache, or
   downloaded when the machine is online and ``HF_HUB_OFFLINE`` is not set.

A missing network is a :class:`MissingWeights` value, never an exception inside metric code:
the run reports the metric as ``n/a`` with :meth:`MissingWeights.line` in the table notes, or,
with ``--strict``, stops with that one line (exit status 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

ENV_VAR = "DIFFUSION4D_WEIGHTS"

#: torchvision ImageNet backbones used by LPIPS (file name -> download URL). The LPIPS
#: linear-layer weights themselves ship inside the ``lpips`` wheel (``lpips/weights/v0.1``).
LPIPS_BACKBONES: Dict[str, Dict[str, str]] = {
    "alex": {
        "file": "alexnet-owt-7be5be79.pth",
        "url": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    },
    "vgg": {
        "file": "vgg16-397923af.pth",
        "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
    },
}

#: I3D (Kinetics-400) detectors accepted for FVD, in order of preference.
I3D_FILES: Dict[str, str] = {
    # TorchScript detector of StyleGAN-V and most later FVD code (a port of the TF-hub I3D).
    "i3d_torchscript.pt": "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
    # InceptionI3d state dict (piergiaj/pytorch-i3d layout) used by VideoGPT / TATS FVD code.
    "i3d_pretrained_400.pt": "the VideoGPT FVD checkpoint (github.com/wilson1yan/VideoGPT, videogpt/fvd)",
}

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"


@dataclass
class MissingWeights:
    """A network that could not be found: what, where we looked, how to get it."""

    metric: str  # e.g. "lpips"
    filename: str  # the file (or model id) that is missing
    searched: List[str]  # folders / ids tried
    how: str  # one sentence on how to obtain it

    def line(self) -> str:
        """One line for ``--strict`` errors and table notes."""
        where = ", ".join(self.searched) if self.searched else "nowhere (no weights folder given)"
        return f"{self.metric}: missing {self.filename} (searched: {where}); {self.how}"


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch: ``$TORCH_HOME/hub``, default
    ``$XDG_CACHE_HOME/torch/hub`` (``~/.cache/torch/hub``)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(torch_home).expanduser() / "hub"


def search_dirs(weights_dir: Optional[Union[str, Path]] = None) -> List[Path]:
    """Folders searched for weight files, in order (see the module docstring)."""
    dirs: List[Path] = []
    if weights_dir:
        dirs.append(Path(weights_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(torch_hub_dir() / "checkpoints")
    dirs.append(Path.home() / ".cache" / "diffusion4d")
    seen, unique = set(), []
    for d in dirs:
        if str(d) not in seen:
            seen.add(str(d))
            unique.append(d)
    return unique


def find_file(names: Sequence[str], weights_dir: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """First existing file among ``names`` in :func:`search_dirs` (directly or one level down)."""
    for folder in search_dirs(weights_dir):
        if not folder.is_dir():
            continue
        for name in names:
            direct = folder / name
            if direct.is_file():
                return direct
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            for name in names:
                if (sub / name).is_file():
                    return sub / name
    return None


def resolve_lpips_backbone(net: str, weights_dir: Optional[Union[str, Path]] = None) -> Union[Path, MissingWeights]:
    """The torchvision ImageNet checkpoint of the LPIPS backbone ``net`` ("alex" or "vgg")."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; valid: {sorted(LPIPS_BACKBONES)}")
    spec = LPIPS_BACKBONES[net]
    found = find_file([spec["file"]], weights_dir)
    if found is not None:
        return found
    return MissingWeights(
        metric="lpips",
        filename=spec["file"],
        searched=[str(d) for d in search_dirs(weights_dir)],
        how=f"download {spec['url']} into --weights-dir (or ${ENV_VAR}, or the torch hub cache)",
    )


def resolve_i3d(weights_dir: Optional[Union[str, Path]] = None) -> Union[Path, MissingWeights]:
    """The I3D detector file for FVD (``i3d_torchscript.pt`` or ``i3d_pretrained_400.pt``)."""
    found = find_file(list(I3D_FILES), weights_dir)
    if found is not None:
        return found
    return MissingWeights(
        metric="fvd",
        filename=" or ".join(I3D_FILES),
        searched=[str(d) for d in search_dirs(weights_dir)],
        how=f"download {I3D_FILES['i3d_torchscript.pt']} as i3d_torchscript.pt into --weights-dir (or ${ENV_VAR})",
    )


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint accepts a TCP connection within ``timeout`` seconds.

    Without this check an offline machine without ``HF_HUB_OFFLINE=1`` spends minutes in
    transformers' download retries before failing.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    thread.start()
    thread.join(timeout + 1.0)
    return result["ok"]


def resolve_clip(model: str = DEFAULT_CLIP_MODEL, weights_dir: Optional[Union[str, Path]] = None) -> Union[str, MissingWeights]:
    """A loadable CLIP location: a local folder, or a hub id present in the HF cache (or online).

    ``model`` is a folder path or a hub id such as ``openai/clip-vit-base-patch32``. A hub id is
    also looked for as ``<dir>/<id>`` and ``<dir>/<id's last part>`` in :func:`search_dirs`.
    Returns the path/id to pass to ``from_pretrained``.
    """
    path = Path(model).expanduser()
    if _is_model_folder(path):
        return str(path)
    searched: List[str] = []
    if path.exists():
        return MissingWeights("clip", model, [str(path)], "the folder has no config.json: save it with CLIPModel.save_pretrained")
    for folder in search_dirs(weights_dir):
        for cand in (folder / model, folder / Path(model).name):
            if _is_model_folder(cand):
                return str(cand)
        searched.append(str(folder))
    if "/" in model and not model.startswith((".", "/")):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
            if isinstance(cached, str):
                return model
        except Exception:  # pragma: no cover - huggingface_hub is a transformers dependency
            pass
        searched.append(f"HF cache ({model})")
        if not hub_offline():
            if hub_reachable():
                return model  # online: from_pretrained downloads it; a failure becomes MissingWeights there
            searched.append("the HF hub (unreachable)")
    return MissingWeights(
        metric="clip",
        filename=model,
        searched=searched,
        how=(
            "pass --clip-model a local folder saved with CLIPModel/CLIPImageProcessor/CLIPTokenizer.save_pretrained "
            "(e.g. a snapshot of openai/clip-vit-base-patch32), or put it under --weights-dir, or run online"
        ),
    )
