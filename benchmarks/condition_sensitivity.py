"""How much a trained model uses a condition: denoising error with the right one against wrong ones.

For every cached orbit of a training run (its latent cache, caption, cameras and motion magnitude), noise
the latents at a few timesteps and run the UNet once per alternative of one condition, everything else
fixed:

* ``--condition text``: every distinct training caption, and the empty caption;
* ``--condition camera``: the orbit's own cameras and the same cameras rolled by 1 ... F-1 frames (every frame
  given another view of the same orbit), and no camera at all;
* ``--condition motion``: the motion magnitudes of every training orbit with the same caption (the asset at
  its other amplitudes, each orbit its own m), and the dropped m (the null embedding). Orbits whose caption
  has a single magnitude (a static asset) are skipped.

Reports per timestep:

* ``own``, ``other``, ``empty``: the mean squared error to the diffusion target with the right condition,
  with the wrong ones (mean over them) and with none;
* ``gain``: ``(other - own) / own``, how much worse a wrong condition makes the prediction (0 means
  the condition is ignored);
* ``top1``: the share of orbits whose right condition gives the lowest error among all alternatives
  (denoising as a classifier; chance is ``1 / alternatives``).

A model whose samples look alike for different captions shows a caption ``gain`` near 0 and ``top1`` near
chance; one whose orbits show the same view in every frame shows the same for the camera. Noise draws are
seeded, so two runs of the same checkpoint print the same numbers. Stage-1 runs (``stage: prior3d``) are
measured on the static orbits they learn.

    python benchmarks/condition_sensitivity.py --run demo_out/train [--condition camera] [--checkpoint checkpoint-1000] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path
from typing import Dict, List

import torch

CONDITIONS = ("text", "camera", "motion")


def _latest_checkpoint(run: Path) -> Path:
    from diffusion4d.train.checkpointing import list_checkpoints

    found = list_checkpoints(run)
    if not found:
        raise SystemExit(f"no complete checkpoint-<step> folder in {run}")
    return found[-1][1]


def measure(run: Path, checkpoint: Path, timesteps: List[int], draws: int, seed: int = 0,
            condition: str = "text") -> List[Dict[str, float]]:
    """One row per timestep: own / other / empty errors, gain and top-1 accuracy of ``condition``."""
    import yaml
    from diffusers import DDIMScheduler

    from diffusion4d.models import encode_prompts, load_components
    from diffusion4d.train import losses as L
    from diffusion4d.train.orbit_dataset import OrbitDataset

    if condition not in CONDITIONS:
        raise SystemExit(f"--condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    caches = [p for p in (run / "latent_cache").iterdir() if p.is_dir()] if (run / "latent_cache").is_dir() else []
    if len(caches) != 1:
        raise SystemExit(f"{run / 'latent_cache'} must hold exactly one cache folder (found {len(caches)}); train with data.cache_latents=true")
    comps = load_components(checkpoint, components=("unet", "text_encoder", "tokenizer"))
    unet, tokenizer, text_encoder = comps["unet"], comps["tokenizer"], comps["text_encoder"]
    alphas_cumprod = DDIMScheduler.from_pretrained(str(checkpoint), subfolder="scheduler").alphas_cumprod
    prediction_type = cfg["model"]["prediction_type"]
    d = cfg["data"]
    dataset = OrbitDataset(d["root"], d["resolution"], d["num_frames"], d["frame_sampling"], random_orbit=False,
                           cache_dir=str(caches[0]), stage=cfg.get("stage", "4d"))
    captions = sorted({rec["caption"] for rec in dataset.records})
    with torch.no_grad():
        text = torch.cat([encode_prompts(tokenizer, text_encoder, [c]) for c in captions + [""]]).float()  # [C+1, L, D]
    magnitudes: Dict[str, List[float]] = {}  # caption -> the distinct m of its orbits (motion condition)
    for rec in dataset.records:  # random_orbit=False: every item is its record's orbit 0
        m = rec["orbits"][0].get("motion_magnitude")
        values = magnitudes.setdefault(rec["caption"], [])
        if m is not None and float(m) not in values:
            values.append(float(m))
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in timesteps:
        own, other, empty, hits, n, alternatives = 0.0, 0.0, 0.0, 0, 0, 0
        for i in range(len(dataset)):
            item = dataset[i]
            z0 = item["latents"][None].float()
            own_text = text[captions.index(item["caption"])][None]
            motions = [float(item["motion_magnitude"])]
            if condition == "text":  # alternatives: every caption (the own one at index k), then the empty one
                k, texts, cams = captions.index(item["caption"]), text, [item["c2w"]] * text.shape[0]
                motions = motions * text.shape[0]
            elif condition == "camera":  # alternatives: the orbit's cameras rolled by 0 (own) ... F-1 frames, then none
                frames = item["c2w"].shape[0]
                k, texts = 0, own_text.expand(frames + 1, -1, -1)
                cams = [torch.roll(item["c2w"], j, 0) for j in range(frames)] + [None]
                motions = motions * (frames + 1)
            else:  # alternatives: every m of the caption's orbits (the own one at index k), then the dropped m
                values = sorted(magnitudes[item["caption"]])
                if len(values) < 2 or motions[0] not in values:
                    continue
                k, texts = values.index(motions[0]), own_text.expand(len(values) + 1, -1, -1)
                cams, motions = [item["c2w"]] * (len(values) + 1), values + [float("nan")]
            for _ in range(draws):
                noise = torch.randn(z0.shape, generator=g)
                ts = torch.full((1,), t, dtype=torch.long)
                z_t = L.add_noise(alphas_cumprod, z0, noise, ts)
                target = L.diffusion_target(prediction_type, alphas_cumprod, z0, noise, ts)
                err = _errors(unet, z_t, ts, texts, motions, cams, target)  # [alternatives + 1], the last: none
                right_or_wrong = err[:-1]
                alternatives = len(right_or_wrong)
                own += float(right_or_wrong[k])
                other += float((right_or_wrong.sum() - right_or_wrong[k]) / max(alternatives - 1, 1))
                empty += float(err[-1])
                hits += int(int(right_or_wrong.argmin()) == k)
                n += 1
        if n == 0:
            raise SystemExit(f"no orbit has an alternative {condition} to compare with")
        rows.append({"t": t, "own": own / n, "other": other / n, "empty": empty / n,
                     "gain": (other - own) / own, "top1": hits / n, "orbits": n, "alternatives": alternatives})
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return rows


def _errors(unet, z_t: torch.Tensor, ts: torch.Tensor, texts: torch.Tensor, motions: List[float], cams: list, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the UNet's prediction for each alternative ``j`` (caption ``texts[j]``, motion
    magnitude ``motions[j]`` (NaN: dropped), cameras ``cams[j]`` ``[F, 4, 4]``, or None for no camera
    embedding): one batched forward per run of alternatives with cameras or without."""
    errors = []
    for with_camera in (True, False):
        idx = [j for j, c in enumerate(cams) if (c is not None) == with_camera]
        if not idx:
            continue
        b = len(idx)
        with torch.no_grad():
            pred = unet(z_t.expand(b, *z_t.shape[1:]), ts.expand(b), texts[idx], motion_magnitude=torch.tensor([motions[j] for j in idx], dtype=torch.float32),
                        camera_c2w=torch.stack([cams[j] for j in idx]) if with_camera else None).sample
        errors.append(((pred - target) ** 2).flatten(1).mean(1))
    return torch.cat(errors)  # alternatives with cameras first: callers put the camera-less one last


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a training output folder (config.yaml, latent_cache/, checkpoint-N/)")
    p.add_argument("--condition", default="text", choices=CONDITIONS, help="the condition whose use is measured")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder name or path (default: the newest)")
    p.add_argument("--timesteps", default="100,300,500,700,900", help="comma list of training timesteps")
    p.add_argument("--draws", type=int, default=2, help="noise draws per orbit and timestep")
    p.add_argument("--label", default="", help="a name for the run in the results table")
    p.add_argument("--results", default=None, help="append a section to this RESULTS.md")
    args = p.parse_args()
    run = Path(args.run)
    ckpt = _latest_checkpoint(run) if args.checkpoint is None else (run / args.checkpoint if (run / args.checkpoint).is_dir() else Path(args.checkpoint))
    rows = measure(run, ckpt, [int(x) for x in args.timesteps.split(",")], args.draws, condition=args.condition)
    if args.results:
        what = {"text": ("Caption", "caption", "distinct captions"), "camera": ("Camera", "cameras", "views (rolls of the orbit's cameras)"),
                "motion": ("Motion-magnitude", "m", "motion magnitudes of the caption's orbits (up to)")}[args.condition]
        lines = [
            "",
            f"### {what[0]} sensitivity {args.label} ({datetime.date.today().isoformat()}, {platform.node()}, CPU)",
            "",
            f"Command: `python benchmarks/condition_sensitivity.py --run {args.run} --condition {args.condition} --timesteps {args.timesteps} "
            f"--draws {args.draws}`; checkpoint {ckpt.name}, {rows[0]['orbits']} orbit draws per timestep, {rows[0]['alternatives']} "
            f"{what[2]} (top-1 by chance {1 / rows[0]['alternatives']:.2f}).",
            "",
            f"| t | MSE own {what[1]} | other {what[1]} | no {what[1]} | gain (other-own)/own | top-1 own {what[1]} |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {r['t']} | {r['own']:.4f} | {r['other']:.4f} | {r['empty']:.4f} | {r['gain']:.3f} | {r['top1']:.2f} |" for r in rows]
        with open(args.results, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
