"""Exports: 3DGS PLY files, the compact 4D file (safetensors + json), mp4 videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from diffusion4d.io import atomic_write_json
from diffusion4d.recon.deformation import HexPlaneDeformation
from diffusion4d.recon.gaussians import GaussianModel

FORMAT_VERSION = 2


def ply_fields(sh_rest: int) -> list:
    """Vertex property names of the standard 3D Gaussian Splatting PLY layout."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * sh_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def write_ply(path: Path, raw: Dict[str, Tensor]) -> None:
    """Write raw Gaussian parameters (log-scales, opacity logits, quats wxyz, sh0/shN) as a 3DGS PLY.

    ``f_rest_*`` is channel-major (all R coefficients, then G, then B), as 3DGS writes it, so
    common splat viewers open the file.
    """
    from plyfile import PlyData, PlyElement

    means = raw["means"].detach().cpu().float().numpy()
    n = means.shape[0]
    sh0 = raw["sh0"].detach().cpu().float().reshape(n, 3).numpy()
    shn = raw["shN"].detach().cpu().float()  # [N, K-1, 3]
    rest = shn.permute(0, 2, 1).reshape(n, -1).numpy()  # channel-major
    quats = torch.nn.functional.normalize(raw["quats"].detach().cpu().float(), dim=-1).numpy()
    cols = [means, np.zeros_like(means), sh0, rest, raw["opacities"].detach().cpu().float().reshape(n, 1).numpy(),
            raw["scales"].detach().cpu().float().numpy(), quats]  # fmt: skip
    data = np.concatenate(cols, axis=1).astype(np.float32)
    names = ply_fields(shn.shape[1])
    vertex = np.empty(n, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = data[:, i]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp))
    tmp.replace(path)


def read_ply(path: Path) -> Dict[str, Tensor]:
    """Read a 3DGS PLY back into raw parameters (inverse of :func:`write_ply`)."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    names = [p.name for p in v.properties]
    n_rest = sum(1 for x in names if x.startswith("f_rest_")) // 3
    col = lambda *ks: torch.from_numpy(np.stack([np.asarray(v[k]) for k in ks], axis=1))  # noqa: E731
    n = len(v["x"])
    rest = col(*[f"f_rest_{i}" for i in range(3 * n_rest)]) if n_rest else torch.zeros(n, 0)
    return {
        "means": col("x", "y", "z"),
        "quats": col("rot_0", "rot_1", "rot_2", "rot_3"),
        "scales": col("scale_0", "scale_1", "scale_2"),
        "opacities": col("opacity")[:, 0],
        "sh0": col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :],
        "shN": rest.reshape(n, 3, n_rest).permute(0, 2, 1),
    }


def save_4d(output_dir: Path, model: GaussianModel, field: Optional[HexPlaneDeformation], meta: dict) -> Tuple[Path, Path]:
    """``gaussians_4d.safetensors`` (``gaussians.<key>`` + ``deformation.<param>``) and ``gaussians_4d.json``."""
    from safetensors.torch import save_file

    tensors = {f"gaussians.{k}": v.detach().cpu().contiguous() for k, v in model.params.items()}
    if field is not None:
        tensors.update({f"deformation.{k}": v.detach().cpu().contiguous() for k, v in field.state_dict().items()})
    st_path, json_path = output_dir / "gaussians_4d.safetensors", output_dir / "gaussians_4d.json"
    save_file(tensors, str(st_path))
    info = {
        "format_version": FORMAT_VERSION,
        "num_gaussians": len(model),
        "sh_degree": model.sh_degree,
        "deformation": None if field is None else {"class": "HexPlaneDeformation", "config": field.config},
        "parameterisation": "means, quats (wxyz), scales (log), opacities (logit), sh0/shN; at time t in [0, 1] "
        "the deformation adds d_means, d_quats, d_log_scales (and d_sh0 with config.colour), then, with "
        "config.rigid_knots, applies the rigid motion: x' = R(t)(x - centre) + centre + T(t), q' = q_R(t) q, "
        "rotation vectors and translations linear between knots k / (rigid_knots - 1)",
        **meta,
    }
    atomic_write_json(json_path, info)
    return st_path, json_path


def load_4d(output_dir: Path) -> Tuple[GaussianModel, Optional[HexPlaneDeformation], dict]:
    """Load what :func:`save_4d` wrote."""
    from safetensors.torch import load_file

    output_dir = Path(output_dir)
    info = json.loads((output_dir / "gaussians_4d.json").read_text())
    tensors = load_file(str(output_dir / "gaussians_4d.safetensors"))
    params = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("gaussians.")}
    model = GaussianModel(params, info["sh_degree"])
    field = None
    if info.get("deformation"):
        field = HexPlaneDeformation(**info["deformation"]["config"])
        field.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("deformation.")})
    return model, field, info


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write uint8 frames ``[N, H, W, 3]`` as an H.264 mp4 (:func:`diffusion4d.io.write_video`)."""
    from diffusion4d.io.video import write_video as _write

    _write(path, frames, fps=fps)
