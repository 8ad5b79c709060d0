"""GPU suite: the real-size numbers a CPU session cannot measure, in one run of at most ~8 minutes
on one H100/H200.

    python benchmarks/gpu_suite.py                      # CUDA: all parts, appends to benchmarks/RESULTS.md
    python benchmarks/gpu_suite.py --smoke [--results PATH]   # every part at tiny size on CPU (< 1 min)

Parts (each runs under its own time limit inside a try: a failing part is recorded, the others
still run, and the exit status is 1 when any part failed):

* ``train``: a random-weight :class:`UNet4DConditionModel` at the real ModelScope-T2V 1.7B
  configuration (``MODELSCOPE_UNET_CONFIG`` -> ``UNet3DConditionModel`` -> ``from_base_model``,
  24 frames), t2v training steps on latents ``[B, 4, 24, 32, 32]`` (24 frames x 256 px): fp32
  weights and fused fp32 AdamW, bf16 autocast, gradient checkpointing, motion + camera conditioning;
  median step time and peak ``torch.cuda.max_memory_allocated`` for per-GPU batch 1, 2, 4 (an OOM
  is recorded for its batch size).
* ``sample``: DDIM-50 (the repo's scheduler config) of one orbit with the UNet in bf16 and 3D-aware
  guidance (cond / uncond / prior branches, ``diffusion4d.guidance.guided_prediction``): the three
  branches batched into one forward (batch 3) vs one forward per branch.
* ``curate``: one procedural asset (``diffusion4d assets --count 1``) curated at 256 px, 24 frames
  (``diffusion4d curate``, dynamic + static orbits). When it fails the recon part falls back to the
  synthetic scene of ``diffusion4d.recon.testing`` (and this part stays failed).
* ``recon``: ``diffusion4d reconstruct --backend gsplat --preset paper --holdout 4`` on that clip:
  wall time, held-out PSNR (``metrics.json``), then the fitted Gaussians (``gaussians_4d``, deformed
  to each view's time) rendered by gsplat and by the torch backend: max / mean |difference|.
  gsplat's PyPI wheel compiles its CUDA kernels on first use (needs nvcc; minutes): the suite
  starts that build in a background process at once and the recon part waits for it. When the
  paper preset overruns its limit, rerun with e.g. ``--parts recon --recon-overrides coarse.iterations=3000``.

Budget: ``--budget`` seconds in all (default 470); train <= 120 s, sample <= 80 s, curate <= 60 s,
recon takes what is left (<= 300 s).

``--smoke``: tiny UNet widths, 4 frames, 32 px (latents 4x4), batch 1 and 2, 2 sampling steps,
curation at 32 px, the ``test`` recon preset (fewer steps) with the torch backend, and the torch
backend compared with the dense reference rasteriser instead of gsplat; it writes its section
only to ``--results`` when given. Without CUDA (and without ``--smoke``) the suite prints
"no CUDA device: GPU suite skipped" and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
SKIP_MESSAGE = "no CUDA device: GPU suite skipped"
PARTS = ("train", "sample", "curate", "recon")

# the GPU run: total wall-clock budget and per-part limits (seconds); recon gets what is left
GPU_BUDGET_S = 470.0
GPU_LIMITS = {"train": 120.0, "sample": 80.0, "curate": 60.0, "recon": 300.0}
SMOKE_LIMITS = {"train": 60.0, "sample": 60.0, "curate": 60.0, "recon": 90.0}
RENDER_COMPARE_RESERVE_S = 25.0  # kept from the recon limit for the backend comparison


class PartTimeout(Exception):
    """A part ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`PartTimeout` in the main thread after ``seconds`` (SIGALRM; no-op elsewhere)."""
    usable = hasattr(signal, "SIGALRM") and seconds > 0
    if not usable:
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise PartTimeout(f"time limit of {seconds:g} s reached")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------------------------ settings
class Settings:
    """Sizes of one run: the real GPU sizes, or the tiny CPU ones of ``--smoke``."""

    def __init__(self, smoke: bool, device: str, work: Path):
        self.smoke, self.device, self.work = smoke, device, work
        self.frames = 4 if smoke else 24
        self.pixels = 32 if smoke else 256
        self.latent = self.pixels // 8
        self.batch_sizes = (1, 2) if smoke else (1, 2, 4)
        self.train_warmup, self.train_steps = (1, 2) if smoke else (2, 5)
        self.sample_steps = 2 if smoke else 50
        self.text_tokens = 77
        self.recon_preset = "test" if smoke else "paper"
        self.recon_backend = "torch" if smoke else "gsplat"
        self.reference = "dense" if smoke else "torch"  # what the recon backend's render is compared with
        self.curate_frames = 8 if smoke else 24
        self.holdout = 4
        import torch

        self.sample_dtype = torch.float32 if smoke else torch.bfloat16  # UNet weights while sampling
        self.train_autocast = not smoke  # bf16 autocast (CPU bf16 kernels are slow: the smoke run is fp32)

    def unet_config(self) -> Dict[str, Any]:
        from diffusion4d.testing.modelscope_layout import MODELSCOPE_UNET_CONFIG, small_unet_config

        if self.smoke:
            return small_unet_config((32, 32, 64, 64), cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8, sample_size=self.latent)
        return copy.deepcopy(MODELSCOPE_UNET_CONFIG)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _peak_gib(device: str) -> Optional[float]:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def build_unet(s: Settings, dtype=None):
    """The random-weight 4D UNet the way a real run gets it: UNet3D (ModelScope config) -> from_base_model."""
    import torch
    from diffusers import UNet3DConditionModel

    from diffusion4d.models import UNet4DConditionModel

    from diffusers.utils import logging as dlog

    torch.manual_seed(0)
    verbosity = dlog.get_verbosity()
    dlog.set_verbosity_error()  # `.to(bf16)` warns about modules to keep in fp32 (this UNet has none)
    try:
        with torch.device(s.device):  # weights are created on the GPU directly (1.7B on CPU takes minutes)
            base = UNet3DConditionModel(**s.unet_config())
            if dtype is not None:
                base = base.to(dtype)
            model = UNet4DConditionModel.from_base_model(base, num_frames=s.frames)
    finally:
        dlog.set_verbosity(verbosity)
    del base
    _free(s.device)
    return model


def orbit_cameras(s: Settings, batch: int):
    """``[B, F, 4, 4]`` OpenCV c2w of the dynamic orbit (what training and sampling condition on)."""
    import numpy as np
    import torch

    from diffusion4d.cameras import orbit_trajectory

    c2w = torch.as_tensor(np.asarray(orbit_trajectory("dynamic", s.frames, width=s.pixels, height=s.pixels).c2w), dtype=torch.float32)
    return c2w[None].expand(batch, -1, -1, -1).to(s.device)


def scheduler():
    from diffusers import DDIMScheduler

    from diffusion4d.testing.modelscope_layout import MODELSCOPE_SCHEDULER_CONFIG

    return DDIMScheduler(**{k: v for k, v in MODELSCOPE_SCHEDULER_CONFIG.items() if k != "skip_prk_steps"})


# ------------------------------------------------------------------------------------ parts
def part_train(s: Settings) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    model = build_unet(s)
    build_s = time.perf_counter() - t0
    model.enable_gradient_checkpointing()
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    cuda = s.device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=1e-2, fused=cuda)
    sched = scheduler()
    cross = model.config.cross_attention_dim
    rows: List[Dict[str, Any]] = []
    try:
        for batch in s.batch_sizes:
            row: Dict[str, Any] = {"batch": batch}
            try:
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                times = []
                gen = torch.Generator(device=s.device).manual_seed(batch)
                cams = orbit_cameras(s, batch)
                for step in range(s.train_warmup + s.train_steps):
                    start = time.perf_counter()
                    x0 = torch.randn(batch, 4, s.frames, s.latent, s.latent, device=s.device, generator=gen)
                    noise = torch.randn(x0.shape, device=s.device, generator=gen)
                    t = torch.randint(0, sched.config.num_train_timesteps, (batch,), device=s.device, generator=gen)
                    noisy = sched.add_noise(x0, noise, t)
                    ctx = torch.randn(batch, s.text_tokens, cross, device=s.device, generator=gen)
                    motion = torch.rand(batch, device=s.device, generator=gen) * 0.1
                    with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=s.train_autocast):
                        pred = model(noisy, t, ctx, motion_magnitude=motion, camera_c2w=cams).sample
                    loss = F.mse_loss(pred.float(), noise)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    _sync(s.device)
                    if step >= s.train_warmup:
                        times.append(time.perf_counter() - start)
                times.sort()
                row.update(status="ok", median_step_s=times[len(times) // 2], min_step_s=times[0],
                           samples_per_s=batch / times[len(times) // 2], peak_gib=_peak_gib(s.device), loss=float(loss.detach()))  # fmt: skip
            except Exception as err:  # noqa: BLE001 - OOM (or anything) for this batch size is recorded
                if isinstance(err, PartTimeout):
                    raise
                opt.zero_grad(set_to_none=True)
                row.update(status="OOM" if _is_oom(err) else f"error: {type(err).__name__}: {err}", peak_gib=_peak_gib(s.device))
                _free(s.device)
            print(f"  train batch {batch}: {_row_text(row)}", flush=True)
            rows.append(row)
    finally:
        del model, opt
        _free(s.device)
    ok = [r for r in rows if r["status"] == "ok"]
    result = {"params": n_params, "build_s": build_s, "rows": rows,
              "shape": [None, 4, s.frames, s.latent, s.latent], "gradient_checkpointing": True,
              "precision": ("fp32 weights + " + ("fused " if cuda else "") + "fp32 AdamW, " + ("bf16 autocast" if s.train_autocast else "fp32"))}  # fmt: skip
    if not ok:
        raise RuntimeError(f"no batch size trained: {[r['status'] for r in rows]}")
    return result


def _row_text(row: Dict[str, Any]) -> str:
    if row["status"] != "ok":
        return row["status"]
    mem = f", peak {row['peak_gib']:.1f} GiB" if row.get("peak_gib") is not None else ""
    return f"{row['median_step_s']:.3f} s/step (min {row['min_step_s']:.3f}), {row['samples_per_s']:.2f} samples/s{mem}"


def part_sample(s: Settings) -> Dict[str, Any]:
    import torch

    from diffusion4d.guidance import guided_prediction

    cuda = s.device.startswith("cuda")
    dtype = s.sample_dtype
    model = build_unet(s, dtype=None if dtype == torch.float32 else dtype).eval()
    cross = model.config.cross_attention_dim
    gen = torch.Generator(device=s.device).manual_seed(0)
    # branches (docs/method.md Eq. 3): cond (text, m), uncond (empty text, null m), prior (text, m = 0)
    text = torch.randn(1, s.text_tokens, cross, device=s.device, generator=gen, dtype=dtype)
    empty = torch.randn(1, s.text_tokens, cross, device=s.device, generator=gen, dtype=dtype)
    ctx3 = torch.cat([text, empty, text])
    motion3 = torch.tensor([0.02, float("nan"), 0.0], device=s.device)
    cams3 = orbit_cameras(s, 3)
    sched = scheduler()
    out: Dict[str, Any] = {"steps": s.sample_steps, "dtype": str(dtype).replace("torch.", ""),
                           "latents": [1, 4, s.frames, s.latent, s.latent]}  # fmt: skip

    def run(batched: bool, steps: int) -> float:
        sched.set_timesteps(steps, device=s.device)
        # the scheduler works in fp32 (as the pipeline); the UNet gets its own dtype
        latents = torch.randn(1, 4, s.frames, s.latent, s.latent, device=s.device, generator=gen)
        _sync(s.device)
        start = time.perf_counter()
        with torch.no_grad():
            for t in sched.timesteps:
                x = latents.to(dtype)
                if batched:
                    eps = model(x.expand(3, -1, -1, -1, -1), t, ctx3, motion_magnitude=motion3, camera_c2w=cams3).sample
                    cond, uncond, prior = eps.float().chunk(3)
                else:
                    cond, uncond, prior = (
                        model(x, t, ctx3[[i]], motion_magnitude=motion3[[i]], camera_c2w=cams3[[i]]).sample.float() for i in range(3)
                    )
                guided = guided_prediction(cond, uncond, prior, guidance_scale=7.0, prior_guidance_scale=0.5)
                latents = sched.step(guided, t, latents).prev_sample
        _sync(s.device)
        if not torch.isfinite(latents.float()).all():
            raise RuntimeError("non-finite latents after sampling")
        return time.perf_counter() - start

    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        run(True, 1)  # warm-up (kernels, allocator)
        run(False, 1)
        for batched in (True, False):
            key = "batched" if batched else "one_by_one"
            total = run(batched, s.sample_steps)
            out[key] = {"total_s": total, "per_step_s": total / s.sample_steps}
            print(f"  sample DDIM-{s.sample_steps}, branches {key}: {total:.2f} s ({total / s.sample_steps * 1000:.1f} ms/step)", flush=True)
        out["peak_gib"] = _peak_gib(s.device)
        out["speedup_batched"] = out["one_by_one"]["total_s"] / out["batched"]["total_s"]
    finally:
        del model
        _free(s.device)
    return out


def _cli(args: List[str], timeout: float, log: Path) -> subprocess.CompletedProcess:
    """Run ``diffusion4d ARGS`` (this interpreter) with a timeout; stdout+stderr go to ``log``."""
    cmd = [sys.executable, "-m", "diffusion4d", "-q", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DIFFUSION4D_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    with open(log, "a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, timeout=max(1.0, timeout), env=env, cwd=str(ROOT))
        except subprocess.TimeoutExpired:
            raise PartTimeout(f"`diffusion4d {args[0]}` ran past {timeout:.0f} s (log {log})") from None
        fh.write(proc.stdout)
    if proc.returncode:
        tail = log.read_text()[-800:].strip().splitlines()
        raise RuntimeError(f"`diffusion4d {args[0]}` exited {proc.returncode}: {tail[-1] if tail else ''} (log {log})")
    return proc


GSPLAT_BUILD = (
    "import time; t = time.perf_counter(); from gsplat.cuda._backend import _C; "
    "assert _C is not None, 'gsplat CUDA kernels unavailable (no prebuilt csrc and no CUDA toolkit to compile them)'; "
    "print(f'gsplat kernels ready in {time.perf_counter() - t:.1f} s')"
)


class GsplatBuild:
    """gsplat's PyPI wheel JIT-compiles its CUDA kernels on first use (minutes): the suite starts that
    build in a background process at once (CPU work, while the GPU parts run) so the recon part
    finds the kernels in torch's extension cache."""

    def __init__(self, work: Path):
        import torch

        self.log = work / "gsplat_build.log"
        self.start = time.perf_counter()
        env = dict(os.environ)
        major, minor = torch.cuda.get_device_capability()
        env.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")  # only this GPU's architecture: faster build
        env.setdefault("MAX_JOBS", str(max(2, (os.cpu_count() or 4) - 2)))
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen([sys.executable, "-c", GSPLAT_BUILD], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        self.seconds: Optional[float] = None

    def wait(self, timeout: float) -> float:
        """Wait for the build (at most ``timeout`` s) -> its duration; raise when it failed or is not done."""
        try:
            rc = self.proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            raise PartTimeout(f"gsplat's CUDA kernels still compiling after {time.perf_counter() - self.start:.0f} s (log {self.log})") from None
        if self.seconds is None:
            self.seconds = time.perf_counter() - self.start
        if rc:
            tail = self.log.read_text()[-600:].strip().splitlines()
            raise RuntimeError(f"gsplat's CUDA kernels did not build: {tail[-1] if tail else rc} (log {self.log})")
        return self.seconds

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def part_curate(s: Settings, limit: float) -> Dict[str, Any]:
    deadline = time.perf_counter() + limit
    log = s.work / "curate.log"
    assets, curated = s.work / "assets", s.work / "curated"
    _cli(["assets", "--output", str(assets), "--count", "1", "--seed", "0"], deadline - time.perf_counter(), log)
    record = json.loads((assets / "assets.jsonl").read_text().splitlines()[0])
    uid = record["uid"]
    start = time.perf_counter()
    _cli(["curate", "--input", str(assets / record["file"]), "--output", str(curated), "--frames", str(s.curate_frames),
          "--resolution", str(s.pixels), "--workers", "0", "--orbits-per-asset", "1", "--modes", "dynamic,static"],
         deadline - time.perf_counter(), log)  # fmt: skip
    seconds = time.perf_counter() - start
    manifest = [json.loads(line) for line in (curated / "manifest.jsonl").read_text().splitlines() if line.strip()]
    row = next(r for r in manifest if r["uid"] == uid)
    clip = curated / uid / "dynamic"
    if not (clip / "cameras.json").is_file():
        raise RuntimeError(f"curation wrote no dynamic clip for {uid}: {row.get('status')} {row.get('reason')}")
    out = {"uid": uid, "caption": record.get("caption"), "status": row.get("status"), "reason": row.get("reason"),
           "motion_magnitude": row.get("motion_magnitude"), "frames": s.curate_frames, "resolution": s.pixels,
           "seconds": seconds, "clip": str(clip)}  # fmt: skip
    print(f"  curate {uid} ({record.get('caption')}): {row.get('status')} {row.get('reason') or ''} in {seconds:.1f} s", flush=True)
    return out


def part_recon(s: Settings, limit: float, clip: Optional[str], gsplat_build: Optional[GsplatBuild] = None,
               extra: Sequence[str] = ()) -> Dict[str, Any]:  # fmt: skip
    deadline = time.perf_counter() + limit
    build_s = gsplat_build.wait(deadline - time.perf_counter() - 60.0) if gsplat_build is not None else None
    if build_s is not None:
        print(f"  gsplat kernels ready ({build_s:.1f} s after the suite started)", flush=True)
    source = "curated"
    if clip is None:  # curation failed: the synthetic scene keeps this part measurable
        from diffusion4d.recon.testing import write_synthetic_asset

        clip = str(write_synthetic_asset(s.work / "synthetic", frames=s.curate_frames, size=s.pixels, num=2000 if not s.smoke else 200))
        source = "synthetic (no curated clip)"
    out_dir = s.work / "recon"
    args = ["reconstruct", "--input", clip, "--output", str(out_dir), "--preset", s.recon_preset, "--backend", s.recon_backend,
            "--holdout", str(s.holdout), "--device", s.device, "--restart"]  # fmt: skip
    if s.smoke:
        args += ["coarse.iterations=6", "fine.iterations=2", "fine.rigid_knots=0", "fine.time_curriculum=0.0",
                 "output.videos=false", "output.ply=false"]  # fmt: skip
    args += list(extra)
    start = time.perf_counter()
    _cli(args, deadline - time.perf_counter() - RENDER_COMPARE_RESERVE_S, s.work / "recon.log")
    wall = time.perf_counter() - start
    metrics = json.loads((out_dir / "metrics.json").read_text())
    out = {"input": source, "clip": clip, "preset": s.recon_preset, "backend": metrics.get("backend"), "wall_s": wall,
           "psnr_heldout": metrics.get("psnr_heldout"), "ssim_heldout": metrics.get("ssim_heldout"),
           "psnr_train": metrics.get("psnr_train"), "num_gaussians": metrics.get("num_gaussians"),
           "timings": metrics.get("timings"), "overrides": args[args.index("--restart") + 1 :],
           "gsplat_build_s": build_s}  # fmt: skip
    print(f"  recon {s.recon_preset}/{metrics.get('backend')}: {wall:.1f} s, held-out PSNR {metrics.get('psnr_heldout')}, "
          f"{metrics.get('num_gaussians')} Gaussians", flush=True)  # fmt: skip
    try:
        out["render_compare"] = compare_backends(s, out_dir, Path(clip))
        rc = out["render_compare"]
        print(f"  render {rc['backend']} vs {rc['reference']}: max |diff| {rc['max_abs_diff']:.2e}, mean {rc['mean_abs_diff']:.2e}", flush=True)
    except PartTimeout:
        raise
    except Exception as err:  # the fit's numbers stay recorded; the part still fails
        out["render_compare"] = {"error": f"{type(err).__name__}: {err}"}
        raise _PartialFailure(out, f"render comparison failed: {type(err).__name__}: {err}") from err
    return out


class _PartialFailure(Exception):
    """A part failed after measuring something: ``result`` is recorded with the error."""

    def __init__(self, result: Dict[str, Any], message: str):
        super().__init__(message)
        self.result = result


def compare_backends(s: Settings, recon_dir: Path, clip: Path, views: int = 2) -> Dict[str, Any]:
    """Render the fitted 4D Gaussians (deformed to each view's time) with the fit's backend and with
    the reference (GPU: gsplat vs torch; smoke: torch vs the dense brute-force rasteriser)."""
    import torch

    from diffusion4d.recon.deformation import deform
    from diffusion4d.recon.export import load_4d
    from diffusion4d.recon.fit import load_views
    from diffusion4d.recon.rasterize import rasterize
    from diffusion4d.recon.testing import rasterize_dense
    from diffusion4d.recon.recon_config import load_recon_config

    cfg = load_recon_config(s.recon_preset)
    model, field, info = load_4d(recon_dir)
    dev = torch.device(s.device)
    model = model.to(dev)
    field = field.to(dev).eval() if field is not None else None
    dyn = load_views(clip, cfg.resolution, cfg.background, dev)
    index = sorted({0, len(dyn) // 2})[:views]
    diffs, means = [], []
    with torch.no_grad():
        g = model.activated()
        for i in index:
            gi = deform(g, field, float(dyn.times[i])) if field is not None else g
            args = (gi["means"], gi["quats"], gi["scales"], gi["opacities"], gi["sh"], dyn.viewmats[[i]], dyn.Ks[[i]], dyn.width, dyn.height)
            ours = rasterize(*args, backend=s.recon_backend, sh_degree=model.sh_degree, background=cfg.background)[0]
            if s.reference == "dense":
                ref = rasterize_dense(*args, sh_degree=model.sh_degree, background=cfg.background)[0]
            else:
                ref = rasterize(*args, backend=s.reference, sh_degree=model.sh_degree, background=cfg.background)[0]
            d = (ours.float() - ref.float()).abs()
            diffs.append(float(d.max()))
            means.append(float(d.mean()))
    return {"backend": s.recon_backend, "reference": s.reference, "views": index, "num_gaussians": len(model),
            "size": [dyn.width, dyn.height], "max_abs_diff": max(diffs), "mean_abs_diff": sum(means) / len(means)}  # fmt: skip


# ------------------------------------------------------------------------------------ report
def machine_info(device: str) -> Dict[str, Any]:
    import torch

    info = {"host_cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": device}  # fmt: skip
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30, cudnn=torch.backends.cudnn.version())
    else:
        info["gpu"] = None
    for pkg in ("diffusers", "gsplat"):
        try:
            info[pkg] = __import__(pkg).__version__
        except Exception:  # noqa: BLE001
            info[pkg] = None
    return info


def _fmt(x: Any, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def results_section(summary: Dict[str, Any]) -> str:
    """The dated Markdown section for RESULTS.md."""
    m, parts, smoke = summary["machine"], summary["parts"], summary["smoke"]
    title = "GPU suite (smoke, CPU)" if smoke else "GPU suite"
    where = f"{m['gpu']} ({m['gpu_memory_gib']:.0f} GiB)" if m.get("gpu") else f"CPU only, {m['host_cpus']} cores"
    lines = [
        f"\n## {title} ({summary['date']}, {where})\n",
        f"Machine: {where}; torch {m['torch']}, CUDA {m['cuda']}, diffusers {m['diffusers']}, gsplat {m['gsplat']}, "
        f"Python {m['python']}, {m['host_cpus']} host CPU cores. Command: `{summary['command']}`; total {summary['total_s']:.0f} s.\n",
    ]
    for name in PARTS:
        p = parts.get(name)
        if p is None:
            continue
        status = "ok" if p["ok"] else f"FAILED ({p['error']})"
        lines.append(f"**{name}** ({p['seconds']:.1f} s): {status}\n")
        r = p.get("result") or {}
        if name == "train" and r:
            lines.append(f"UNet4DConditionModel at {'tiny widths' if smoke else 'the real ModelScope-T2V config'}: "
                         f"{r['params'] / 1e6:.1f} M parameters (built in {r['build_s']:.1f} s), latents "
                         f"[B, {', '.join(str(x) for x in r['shape'][1:])}], {r['precision']}, gradient checkpointing.\n")  # fmt: skip
            lines += ["| batch / GPU | median s/step | min s/step | samples/s | peak allocated GiB |", "|---|---|---|---|---|"]
            for row in r["rows"]:
                if row["status"] == "ok":
                    lines.append(f"| {row['batch']} | {row['median_step_s']:.3f} | {row['min_step_s']:.3f} | "
                                 f"{row['samples_per_s']:.2f} | {_fmt(row.get('peak_gib'), '.1f')} |")  # fmt: skip
                else:
                    lines.append(f"| {row['batch']} | {row['status']} | | | {_fmt(row.get('peak_gib'), '.1f')} |")
            lines.append("")
        elif name == "sample" and r.get("batched"):
            lines.append(f"DDIM-{r['steps']}, one orbit (latents {r['latents']}), UNet in {r['dtype']}, 3 guidance branches: "
                         f"batched (one forward, batch 3) {r['batched']['total_s']:.2f} s ({r['batched']['per_step_s'] * 1000:.1f} ms/step); "
                         f"one by one (3 forwards) {r['one_by_one']['total_s']:.2f} s ({r['one_by_one']['per_step_s'] * 1000:.1f} ms/step); "
                         f"batching is {r['speedup_batched']:.2f}x faster; peak allocated {_fmt(r.get('peak_gib'), '.1f', ' GiB')}.\n")  # fmt: skip
        elif name == "curate" and r:
            lines.append(f"Procedural asset `{r['uid']}` (\"{r['caption']}\"), {r['frames']} frames at {r['resolution']} px, "
                         f"dynamic + static orbits: {r['status']} {r.get('reason') or ''} in {r['seconds']:.1f} s "
                         f"(motion magnitude {_fmt(r.get('motion_magnitude'), '.3f')}).\n")  # fmt: skip
        elif name == "recon" and r:
            t = r.get("timings") or {}
            lines.append(f"`diffusion4d reconstruct --preset {r['preset']} --backend {r['backend']} --holdout 4` "
                         f"{' '.join(r.get('overrides') or [])} on the {r['input']} clip: wall {r['wall_s']:.1f} s "
                         f"(coarse {_fmt(t.get('coarse'), '.1f')} s, fine {_fmt(t.get('fine'), '.1f')} s, export {_fmt(t.get('export'), '.1f')} s), "
                         f"held-out PSNR {_fmt(r.get('psnr_heldout'), '.2f', ' dB')} (SSIM {_fmt(r.get('ssim_heldout'), '.3f')}), "
                         f"train PSNR {_fmt(r.get('psnr_train'), '.2f', ' dB')}, {r.get('num_gaussians')} Gaussians.\n")  # fmt: skip
            if r.get("gsplat_build_s") is not None:
                lines.append(f"gsplat's CUDA kernels were ready {r['gsplat_build_s']:.0f} s after the suite started "
                             "(JIT build in the background while the other parts ran; a few seconds when already cached).\n")  # fmt: skip
            rc = r.get("render_compare") or {}
            if "max_abs_diff" in rc:
                lines.append(f"Same Gaussians rendered by `{rc['backend']}` vs `{rc['reference']}` ({len(rc['views'])} views, "
                             f"{rc['size'][0]}x{rc['size'][1]}): max |diff| {rc['max_abs_diff']:.2e}, mean |diff| {rc['mean_abs_diff']:.2e}.\n")  # fmt: skip
            elif rc:
                lines.append(f"Render comparison failed: {rc.get('error')}.\n")
    return "\n".join(lines) + "\n"


def append_results(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (created with a title when missing); never rewrites what is there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmark results\n")
        fh.write(text)


# ------------------------------------------------------------------------------------ driver
def run_part(name: str, fn: Callable[[], Dict[str, Any]], limit: float, use_alarm: bool = True) -> Dict[str, Any]:
    print(f"== part {name} (limit {limit:.0f} s)", flush=True)
    start = time.perf_counter()
    record: Dict[str, Any] = {"ok": False, "error": None, "result": None, "limit_s": limit}
    try:
        with time_limit(limit) if use_alarm else contextlib.nullcontext():
            record["result"] = fn()
        record["ok"] = True
    except _PartialFailure as err:
        record.update(error=str(err), result=err.result)
    except BaseException as err:  # noqa: BLE001 - one part failing must not stop the others
        if isinstance(err, KeyboardInterrupt):
            raise
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc(limit=6)
    record["seconds"] = time.perf_counter() - start
    state = "ok" if record["ok"] else f"FAILED: {record['error']}"
    print(f"part {name}: {state} ({record['seconds']:.1f} s)", flush=True)
    if not record["ok"] and record.get("traceback"):
        print(record["traceback"], file=sys.stderr, flush=True)
    return record


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="every part at tiny size on CPU (checks the script, not the GPU)")
    p.add_argument("--results", default=None, help=f"Markdown file to append to (default {RESULTS}; --smoke: none unless given)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--budget", type=float, default=None, help=f"total seconds (GPU default {GPU_BUDGET_S:.0f}); recon gets what is left")
    p.add_argument("--work", default=None, help="folder for the curated clip and the reconstruction (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the full summary as JSON here")
    p.add_argument("--recon-overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra `diffusion4d reconstruct` config overrides (e.g. coarse.iterations=3000 if the paper preset overruns)")  # fmt: skip
    a = p.parse_args(argv)
    parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {unknown}; valid: {', '.join(PARTS)}")

    import torch

    if not a.smoke and not torch.cuda.is_available():
        print(SKIP_MESSAGE)
        return 0
    device = "cpu" if a.smoke else "cuda"
    if a.smoke:
        torch.set_num_threads(1)  # tiny tensors: one thread beats several on a shared 2-core machine
        os.environ["OMP_NUM_THREADS"] = "1"  # and in the diffusion4d CLI children
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    limits = SMOKE_LIMITS if a.smoke else GPU_LIMITS
    budget = a.budget if a.budget is not None else (sum(SMOKE_LIMITS.values()) if a.smoke else GPU_BUDGET_S)
    t_start = time.perf_counter()
    work_ctx = contextlib.nullcontext(a.work) if a.work else tempfile.TemporaryDirectory(prefix="gpu_suite_")
    summary: Dict[str, Any] = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "smoke": a.smoke,
        "command": " ".join(["python benchmarks/gpu_suite.py"] + (["--smoke"] if a.smoke else [])
                            + ([f"--parts {a.parts}"] if a.parts != ",".join(PARTS) else [])
                            + (["--recon-overrides", *a.recon_overrides] if a.recon_overrides else [])),  # fmt: skip
        "machine": machine_info(device),
        "parts": {},
    }
    print(f"machine: {json.dumps(summary['machine'])}", flush=True)
    with work_ctx as work:
        s = Settings(a.smoke, device, Path(work))
        s.work.mkdir(parents=True, exist_ok=True)

        def left() -> float:
            return budget - (time.perf_counter() - t_start)

        clip: Optional[str] = None
        build = GsplatBuild(s.work) if (not a.smoke and "recon" in parts and s.recon_backend == "gsplat") else None
        for name in parts:
            # later parts keep a minimum; recon takes the rest of the budget
            reserve = sum(min(limits[n], 45.0) for n in parts[parts.index(name) + 1 :])
            limit = max(10.0, min(limits[name], left() - reserve)) if name != "recon" else max(10.0, min(limits[name], left()))
            if name == "train":
                rec = run_part(name, lambda: part_train(s), limit)
            elif name == "sample":
                rec = run_part(name, lambda: part_sample(s), limit)
            elif name == "curate":
                rec = run_part(name, lambda: part_curate(s, limit), limit + 5.0)
                if rec["ok"]:
                    clip = rec["result"]["clip"]
            else:
                rec = run_part(name, lambda: part_recon(s, limit, clip, build, a.recon_overrides), limit + 5.0)
            summary["parts"][name] = rec
            _free(device)
        if build is not None:
            build.stop()
        summary["total_s"] = time.perf_counter() - t_start
    failed = [n for n, r in summary["parts"].items() if not r["ok"]]
    summary["failed"] = failed
    text = results_section(summary)
    print(text)
    target = Path(a.results) if a.results else (None if a.smoke else RESULTS)
    if target is not None and not a.no_write:
        append_results(target, text)
        print(f"appended to {target}")
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=1, default=str))
    print(f"gpu suite: {len(summary['parts']) - len(failed)} / {len(summary['parts'])} parts ok"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f"; {summary['total_s']:.1f} s")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
