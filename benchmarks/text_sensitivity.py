"""How much a trained model uses its caption: denoising error with the own caption against others.

For every cached orbit of a training run (its latent cache, cameras and motion magnitude), noise
the latents at a few timesteps and run the UNet once per distinct training caption and once with
the empty caption, everything else fixed. Reports per timestep:

* ``own``, ``other``, ``empty``: the mean squared error to the diffusion target with the orbit's own
  caption, with the captions of the other assets (mean over them) and with no caption;
* ``gain``: ``(other - own) / own``, how much worse a wrong caption makes the prediction (0 means
  the caption is ignored);
* ``top1``: the share of orbits whose own caption gives the lowest error among all distinct
  captions (denoising as a classifier; chance is ``1 / captions``).

A model whose samples look alike for different captions shows ``gain`` near 0 and ``top1`` near
chance. Noise draws are seeded, so two runs of the same checkpoint print the same numbers.

    python benchmarks/text_sensitivity.py --run demo_out/train [--checkpoint checkpoint-1000] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path
from typing import Dict, List

import torch


def _latest_checkpoint(run: Path) -> Path:
    from diffusion4d.train.checkpointing import list_checkpoints

    found = list_checkpoints(run)
    if not found:
        raise SystemExit(f"no complete checkpoint-<step> folder in {run}")
    return found[-1][1]


def measure(run: Path, checkpoint: Path, timesteps: List[int], draws: int, seed: int = 0) -> List[Dict[str, float]]:
    """One row per timestep: own / other / empty errors, gain and top-1 caption accuracy."""
    import yaml
    from diffusers import DDIMScheduler

    from diffusion4d.models import encode_prompts, load_components
    from diffusion4d.train import losses as L
    from diffusion4d.train.orbit_dataset import OrbitDataset

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    caches = [p for p in (run / "latent_cache").iterdir() if p.is_dir()] if (run / "latent_cache").is_dir() else []
    if len(caches) != 1:
        raise SystemExit(f"{run / 'latent_cache'} must hold exactly one cache folder (found {len(caches)}); train with data.cache_latents=true")
    comps = load_components(checkpoint, components=("unet", "text_encoder", "tokenizer"))
    unet, tokenizer, text_encoder = comps["unet"], comps["tokenizer"], comps["text_encoder"]
    alphas_cumprod = DDIMScheduler.from_pretrained(str(checkpoint), subfolder="scheduler").alphas_cumprod
    prediction_type = cfg["model"]["prediction_type"]
    d = cfg["data"]
    dataset = OrbitDataset(d["root"], d["resolution"], d["num_frames"], d["frame_sampling"], random_orbit=False, cache_dir=str(caches[0]))
    captions = sorted({rec["caption"] for rec in dataset.records})
    with torch.no_grad():
        text = torch.cat([encode_prompts(tokenizer, text_encoder, [c]) for c in captions + [""]]).float()  # [C+1, L, D]
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in timesteps:
        own, other, empty, hits, n = 0.0, 0.0, 0.0, 0, 0
        for i in range(len(dataset)):
            item = dataset[i]
            z0 = item["latents"][None].float()
            k = captions.index(item["caption"])
            for _ in range(draws):
                noise = torch.randn(z0.shape, generator=g)
                ts = torch.full((1,), t, dtype=torch.long)
                z_t = L.add_noise(alphas_cumprod, z0, noise, ts)
                target = L.diffusion_target(prediction_type, alphas_cumprod, z0, noise, ts)
                b = text.shape[0]
                with torch.no_grad():
                    pred = unet(z_t.expand(b, *z_t.shape[1:]), ts.expand(b), text,
                                motion_magnitude=torch.full((b,), item["motion_magnitude"]),
                                camera_c2w=item["c2w"][None].expand(b, *item["c2w"].shape)).sample
                err = ((pred - target) ** 2).flatten(1).mean(1)  # [C+1]
                caption_err = err[:-1]
                own += float(caption_err[k])
                other += float((caption_err.sum() - caption_err[k]) / max(len(captions) - 1, 1))
                empty += float(err[-1])
                hits += int(int(caption_err.argmin()) == k)
                n += 1
        rows.append({"t": t, "own": own / n, "other": other / n, "empty": empty / n,
                     "gain": (other - own) / own, "top1": hits / n, "orbits": n, "captions": len(captions)})
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="a training output folder (config.yaml, latent_cache/, checkpoint-N/)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder name or path (default: the newest)")
    p.add_argument("--timesteps", default="100,300,500,700,900", help="comma list of training timesteps")
    p.add_argument("--draws", type=int, default=2, help="noise draws per orbit and timestep")
    p.add_argument("--label", default="", help="a name for the run in the results table")
    p.add_argument("--results", default=None, help="append a section to this RESULTS.md")
    args = p.parse_args()
    run = Path(args.run)
    ckpt = _latest_checkpoint(run) if args.checkpoint is None else (run / args.checkpoint if (run / args.checkpoint).is_dir() else Path(args.checkpoint))
    rows = measure(run, ckpt, [int(x) for x in args.timesteps.split(",")], args.draws)
    if args.results:
        lines = [
            "",
            f"### Caption sensitivity {args.label} ({datetime.date.today().isoformat()}, {platform.node()}, CPU)",
            "",
            f"Command: `python benchmarks/text_sensitivity.py --run {args.run} --timesteps {args.timesteps} --draws {args.draws}`; "
            f"checkpoint {ckpt.name}, {rows[0]['orbits']} orbit draws per timestep, {rows[0]['captions']} distinct captions "
            f"(top-1 by chance {1 / rows[0]['captions']:.2f}).",
            "",
            "| t | MSE own caption | other captions | empty caption | gain (other-own)/own | top-1 own caption |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {r['t']} | {r['own']:.4f} | {r['other']:.4f} | {r['empty']:.4f} | {r['gain']:.3f} | {r['top1']:.2f} |" for r in rows]
        with open(args.results, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
