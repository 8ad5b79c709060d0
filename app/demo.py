"""``diffusion4d demo``: every stage of the method, for real, on the embedded default.

procedural animated assets -> curated orbital dataset -> tiny 4D-aware model trained ->
text-to-4D generation with a motion sweep -> 4D Gaussian reconstruction -> metric tables ->
``report.html`` + ``metrics.json``.

Each stage runs the same entry point a user would (the ``diffusion4d`` subcommands and the
trainer's ``main``), with the settings of a demo preset (``configs/demo/{full,quick}.yaml``).
Stages record completion in ``demo_state.json``; a rerun skips completed stages (``--force``
redoes them).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from diffusion4d.app.demo_config import DemoConfig
from diffusion4d.config import load_config, save_config
from diffusion4d.errors import UserError
from diffusion4d.io.records import DEMO_STATE_FILE, RECON_METRICS_FILE, DemoState, ReconMetrics
from diffusion4d.presets import resolve_preset

COMMAND = "demo"
HELP = "run every stage (assets, curation, training, generation, reconstruction, evaluation) and write report.html"

logger = logging.getLogger(__name__)
STATE_FILE = DEMO_STATE_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, metavar="DIR", help="output folder (report.html, metrics.json, every stage's files)")
    parser.add_argument("--quick", action="store_true", help="the smaller run (configs/demo/quick.yaml, about 3 minutes on 2 CPU cores)")
    parser.add_argument("--config", metavar="NAME|YAML", help="demo preset: a shipped name (full, quick) or a YAML file (default: full, or quick with --quick)")
    parser.add_argument("--device", default="cpu", help="torch device for training/generation/reconstruction (default cpu)")
    parser.add_argument("--force", action="store_true", help="redo every stage, even completed ones")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="demo config overrides, e.g. train_steps=100")


# the demo settings each stage reads: a rerun with other values redoes that stage and every later one
STAGE_INPUTS: Dict[str, Tuple[str, ...]] = {
    "assets": ("seed", "assets", "amplitudes", "motion_shifts"),
    "curate": ("seed", "frames", "render_resolution"),
    "autoencoder": ("seed", "train_resolution", "autoencoder_steps", "autoencoder_overrides"),
    "train_prior": ("seed", "train_resolution", "frames", "prior_steps", "train_overrides"),  # train_overrides reach both stages
    "train": ("seed", "train_resolution", "frames", "train_steps", "train_overrides", "stage2_overrides"),
    "generate": ("seed", "sampling_seed", "sampler", "sampling_steps", "guidance", "prompts", "sweep_prompts", "probe_prompts", "sweep_values"),
    "reconstruct": ("recon_preset",),
    "evaluate": ("eval_metrics",),
    "report": ("check_browser", "time_target_minutes"),
}


class DemoRun:
    """State of one demo folder: stage results, timings, completion marks.

    Each completed stage records the settings it read (:data:`STAGE_INPUTS`); a rerun skips it only
    while they are unchanged and no earlier stage was redone, so a changed setting never meets
    stale results. A stage redone because its settings changed starts from an empty folder."""

    def __init__(self, out: Path, cfg: DemoConfig, device: str, force: bool):
        self.out, self.cfg, self.device, self.force = out, cfg, device, force
        self.state_path = out / STATE_FILE
        self.state: Dict[str, dict] = {}
        self.redo_rest = False  # an earlier stage ran in this invocation: every later one runs too
        self.resumed = False  # a stage was skipped (done by an earlier invocation): this process's wall time is not the demo's
        if self.state_path.exists() and not force:
            self.state = DemoState.read(self.state_path).stages

    # paths
    @property
    def assets_dir(self) -> Path:
        return self.out / "assets"

    @property
    def curated_dir(self) -> Path:
        return self.out / "curated"

    @property
    def autoencoder_dir(self) -> Path:
        return self.out / "autoencoder"

    @property
    def prior_dir(self) -> Path:
        return self.out / "train_prior3d"

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    @property
    def generated_dir(self) -> Path:
        return self.out / "generated"

    @property
    def recon_dir(self) -> Path:
        return self.out / "recon"

    @property
    def eval_dir(self) -> Path:
        return self.out / "eval"

    def save_state(self) -> None:
        DemoState(stages=self.state).write(self.state_path)

    def stage_folder(self, name: str) -> Optional[Path]:
        """The folder a stage writes (None for the report, a file it overwrites)."""
        return {"assets": self.assets_dir, "curate": self.curated_dir, "autoencoder": self.autoencoder_dir,
                "train_prior": self.prior_dir, "train": self.train_dir, "generate": self.generated_dir,
                "reconstruct": self.recon_dir, "evaluate": self.eval_dir}.get(name)  # fmt: skip

    def stage_inputs(self, name: str) -> Dict[str, object]:
        """The values of the settings stage ``name`` reads, as ``demo_state.json`` stores them."""
        import json

        return json.loads(json.dumps({k: getattr(self.cfg, k) for k in STAGE_INPUTS.get(name, ())}))

    def changed_settings(self, name: str) -> Optional[List[str]]:
        """The settings of stage ``name`` that differ from those its recorded run read (sorted; [] when
        none), or None when the stage has not finished in this folder."""
        import json

        done = self.state.get(name)
        if not done or done.get("status") != "done":
            return None
        inputs = self.stage_inputs(name)
        recorded = done.get("inputs", inputs)  # states written before inputs were recorded: reused
        # a setting added after the stage ran was at its default then
        defaults = json.loads(json.dumps({k: getattr(DemoConfig(), k) for k in inputs if k not in recorded}))
        recorded = {**defaults, **recorded}
        return sorted(k for k in inputs if recorded.get(k) != inputs[k])

    def run_stage(self, name: str, fn: Callable[["DemoRun"], dict]) -> dict:
        import shutil

        done = self.state.get(name)
        inputs = self.stage_inputs(name)
        changed = self.changed_settings(name)
        if changed is not None:
            if not self.redo_rest and not changed:
                logger.info("stage %s: already done (%.1f s), skipping (use --force to redo)", name, done["seconds"])
                self.resumed = True
                return done
            why = f"settings changed ({', '.join(changed)})" if changed else "an earlier stage was redone"
            folder = self.stage_folder(name)
            logger.info("stage %s: %s, redoing it%s", name, why, f" from an empty {folder}" if folder else "")
            if folder is not None and folder.exists():
                shutil.rmtree(folder)
            del self.state[name]
            self.save_state()
        self.redo_rest = True
        start = time.perf_counter()
        result = fn(self) or {}
        entry = {"status": "done", "seconds": round(time.perf_counter() - start, 2), "peak_rss_mb": peak_rss_mb(),
                 "inputs": inputs, **result}
        self.state[name] = entry
        self.save_state()
        logger.info("stage %s: done in %.1f s", name, entry["seconds"])
        return entry


def process_wall_seconds() -> float:
    """Seconds since this process started (interpreter start-up and imports included)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (every demo stage runs in-process)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)  # bytes on macOS, KiB elsewhere


def _cli(argv: List[str]) -> None:
    """Run a ``diffusion4d`` subcommand in this process; a non-zero exit stops the demo."""
    from diffusion4d.app import main

    logger.info("$ diffusion4d %s", " ".join(argv))
    status = main(argv)
    if status != 0:
        raise RuntimeError(f"'diffusion4d {' '.join(argv)}' exited with status {status}")


def asset_records(assets_dir: Path) -> List[dict]:
    """The lines of the procedural generator's ``assets.jsonl`` (empty when there is none)."""
    import json

    path = assets_dir / "assets.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_variants(assets_dir: Path) -> set:
    """Uids of the procedural variants (``assets --amplitudes``: reduced motion amplitude;
    ``--motion-shifts``: another asset's motion): training data only; the demo samples, sweeps
    and scores the original assets."""
    return {r["uid"] for r in asset_records(assets_dir)
            if float(r.get("amplitude_scale", 1.0)) != 1.0 or r.get("motion_from") is not None}


def _trained_uids(run: DemoRun) -> set:
    """Every accepted uid, variants included: what stage 2 trained on."""
    from diffusion4d.io import read_manifest

    return {r["uid"] for r in read_manifest(run.curated_dir / "manifest.jsonl") if r["status"] == "accepted"}


def _accepted(run: DemoRun) -> List[dict]:
    """The accepted full-amplitude assets, sorted by uid (their captions are what the demo samples and
    scores; the manifest's own order is the order in which parallel curation finished them)."""
    from diffusion4d.io import read_manifest

    variants = training_variants(run.assets_dir)
    rows = [r for r in read_manifest(run.curated_dir / "manifest.jsonl") if r["status"] == "accepted" and r["uid"] not in variants]
    return sorted(rows, key=lambda r: r["uid"])


# ----------------------------------------------------------------------------- stages
def stage_assets(run: DemoRun) -> dict:
    _cli(["assets", "--output", str(run.assets_dir), "--count", str(run.cfg.assets), "--seed", str(run.cfg.seed),
          "--amplitudes", ",".join(f"{a:g}" for a in run.cfg.amplitudes),
          "--motion-shifts", ",".join(str(int(s)) for s in run.cfg.motion_shifts)])
    return {"assets": run.cfg.assets}


def stage_curate(run: DemoRun) -> dict:
    c = run.cfg
    _cli(
        [
            "curate", "--input", str(run.assets_dir), "--captions", str(run.assets_dir / "captions.csv"),
            "--output", str(run.curated_dir), "--frames", str(c.frames), "--resolution", str(c.render_resolution),
            "--modes", "dynamic,static,front", "--orbits-per-asset", "2", "--seed", str(c.seed), "--workers", "2",
        ]
    )  # fmt: skip
    from diffusion4d.io import read_manifest

    records = read_manifest(run.curated_dir / "manifest.jsonl")
    counts: Dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    if not counts.get("accepted"):
        raise RuntimeError(f"curation accepted no asset ({counts}); see {run.curated_dir / 'manifest.jsonl'}")
    return {"counts": counts}


def stage_autoencoder(run: DemoRun) -> dict:
    """A small AutoencoderKL fitted to the curated renders: the latent space of both training stages."""
    c = run.cfg
    if c.autoencoder_steps <= 0:
        return {"folder": None}
    _cli(["train-autoencoder", "--data", str(run.curated_dir), "--output", str(run.autoencoder_dir),
          f"resolution={c.train_resolution}", f"steps={c.autoencoder_steps}", f"seed={c.seed}",
          f"num_threads={c.threads}", *c.autoencoder_overrides])  # fmt: skip
    from diffusion4d.train.autoencoder import SUMMARY_FILE

    import json

    summary = json.loads((run.autoencoder_dir / SUMMARY_FILE).read_text())
    keys = ("steps", "psnr_train", "psnr_heldout", "latent", "seconds", "colour_error_train", "colour_error_train_max", "colour_error_worst",
            "latent_eigenvalues")
    return {"folder": str(run.autoencoder_dir), **{k: summary.get(k) for k in keys}}


def _train(run: DemoRun, preset: str, output: Path, steps: int, extra: List[str], stage_overrides: Sequence[str] = ()) -> Path:
    """Run one training stage in process; ``stage_overrides`` come last (they win over ``train_overrides``)."""
    from diffusion4d.train.finetune import main as train_main

    c = run.cfg
    argv = [
        "--config", str(resolve_preset("train", preset)),
        f"data.root={run.curated_dir}", f"output_dir={output}", f"max_steps={steps}",
        f"seed={c.seed}", f"data.resolution={c.train_resolution}", f"data.num_frames={c.frames}",
        f"checkpoint_every={max(steps // 2, 1)}", "validation.every=0", f"num_threads={c.threads}",
        *_vae_overrides(run), *extra, *c.train_overrides, *stage_overrides,
    ]  # fmt: skip
    logger.info("$ accelerate launch train/finetune.py %s", " ".join(argv))
    status = train_main(argv)
    if status not in (0, None):
        raise RuntimeError(f"training ({preset}) exited with status {status}")
    return _latest_checkpoint(output)


def _vae_overrides(run: DemoRun) -> List[str]:
    # the folder, not the path the state recorded: a relative --output resolves from where the demo runs now
    return [f"model.vae={run.autoencoder_dir}"] if run.state.get("autoencoder", {}).get("folder") else []


def stage_train_prior(run: DemoRun) -> dict:
    """Stage 1: the tiny 3D-aware prior on the static orbits of every curated asset (motionless ones included)."""
    if run.cfg.prior_steps <= 0:
        return {"checkpoint": None}
    return {"checkpoint": str(_train(run, "tiny_prior3d.yaml", run.prior_dir, run.cfg.prior_steps, []))}


def stage_train(run: DemoRun) -> dict:
    """Stage 2: the tiny 4D model, started from the stage-1 prior, which its checkpoints carry frozen."""
    prior = str(_latest_checkpoint(run.prior_dir)) if run.state.get("train_prior", {}).get("checkpoint") else None
    extra = [f"model.base={prior}", "model.text_encoder=base"] if prior else []
    checkpoint = _train(run, "tiny.yaml", run.train_dir, run.cfg.train_steps, extra, run.cfg.stage2_overrides)
    return {"checkpoint": str(checkpoint), "prior": prior}


def _latest_checkpoint(train_dir) -> Path:
    from diffusion4d.train.checkpointing import list_checkpoints

    if isinstance(train_dir, DemoRun):
        train_dir = train_dir.train_dir
    checkpoints = list_checkpoints(train_dir)
    if not checkpoints:
        raise RuntimeError(f"training wrote no checkpoint under {train_dir}")
    return checkpoints[-1][1]


def _motion_values(run: DemoRun) -> List[float]:
    import numpy as np

    ms = np.array([r["motion_magnitude"] for r in _accepted(run) if r.get("motion_magnitude") is not None], dtype=float)
    values = sorted({round(float(v), 4) for v in np.linspace(0.0, float(ms.max()) if len(ms) else 0.0, max(run.cfg.sweep_values, 2))})
    return values


def stage_generate(run: DemoRun) -> dict:
    c = run.cfg
    model = str(_latest_checkpoint(run))
    accepted = _accepted(run)
    common = ["--model", model, "--scheduler", c.sampler, "--steps", str(c.sampling_steps), "--seed", str(c.noise_seed()),
              "--device", run.device, "--guidance", str(c.guidance[0]), str(c.guidance[1])]  # fmt: skip
    # 1. text-to-4D for training captions, each with its asset's own motion, named by uid (evaluated against its renders)
    samples = []
    for rec in accepted[: c.prompts]:
        _cli(["generate", *common, "--prompt", rec["caption"], "--motion", f"{rec['motion_magnitude']:.4f}",
              "--name", rec["uid"], "--output", str(run.generated_dir / "prompts")])  # fmt: skip
        samples.append({"uid": rec["uid"], "caption": rec["caption"], "motion": rec["motion_magnitude"]})
    # 2. motion sweeps: the most moving assets' captions, several requested magnitudes, same seed
    sweep = _motion_values(run)
    movers = sorted(accepted, key=lambda r: -(r["motion_magnitude"] or 0.0))[: c.sweep_prompts]
    sweeps = []
    for k, rec in enumerate(movers):
        _cli(["generate", *common, "--prompt", rec["caption"], "--motion", ",".join(f"{m:g}" for m in sweep),
              "--name", f"sweep{k}", "--output", str(run.generated_dir / "sweep")])  # fmt: skip
        sweeps.append({"name": f"sweep{k}", "uid": rec["uid"], "caption": rec["caption"]})
    # 3. generalisation probe: captions recombining attributes seen in training, never together
    probes = []
    for k, probe in enumerate(probe_captions(run.assets_dir, {r["uid"] for r in accepted}, c.probe_prompts, c.seed,
                                                trained=_trained_uids(run))):
        _cli(["generate", *common, "--prompt", probe["caption"], "--name", f"probe{k}",
              "--output", str(run.generated_dir / "probe")])  # fmt: skip
        probes.append({"name": f"probe{k}", **probe})
    return {"samples": samples, "sweep": sweep, "sweeps": sweeps, "sweep_caption": sweeps[0]["caption"] if sweeps else None,
            "probes": probes}


def probe_captions(assets_dir: Path, uids, count: int, seed: int, trained=None) -> List[dict]:
    """Up to ``count`` captions "a <colour> <shape> <motion>" whose colour, shape and motion each
    come from an asset of ``uids`` but never occur together in a training asset (``trained``, by
    default ``uids``; it adds the variants, whose motions recombine objects); each with the uids
    it borrows from."""
    import random

    trained = set(uids) | set(trained or ())
    every = []
    for a in asset_records(assets_dir):
        if a.get("uid") in trained and a.get("shape") and a.get("colour") and f" {a['shape']} " in a["caption"] + " ":
            motion = (a["caption"] + " ").split(f" {a['shape']} ", 1)[1].strip()
            every.append({"uid": a["uid"], "colour": a["colour"], "shape": a["shape"], "motion": motion})
    rows = [r for r in every if r["uid"] in uids]
    seen = {(r["colour"], r["shape"]) for r in every} | {(r["shape"], r["motion"]) for r in every}
    candidates = []
    for c in rows:
        for s in rows:
            for m in rows:
                if (c["colour"], s["shape"]) in seen or (s["shape"], m["motion"]) in seen or not m["motion"]:
                    continue
                candidates.append({"caption": f"a {c['colour']} {s['shape']} {m['motion']}",
                                   "from": {"colour": c["uid"], "shape": s["uid"], "motion": m["uid"]}})
    unique = {p["caption"]: p for p in candidates}
    picked = sorted(unique)
    random.Random(seed).shuffle(picked)
    return [unique[k] for k in picked[:count]]


def stage_reconstruct(run: DemoRun) -> dict:
    uid = run.state["generate"]["samples"][0]["uid"]
    results = {}
    for name, clip in (("generated", run.generated_dir / "prompts" / uid / "dynamic"), ("ground_truth", run.curated_dir / uid / "dynamic")):
        out = run.recon_dir / name / uid
        _cli(["reconstruct", "--input", str(clip), "--output", str(out), "--preset", run.cfg.recon_preset, "--holdout", "4"])
        results[name] = ReconMetrics.read(out / RECON_METRICS_FILE).to_json()
    return {"uid": uid, "metrics": results}


def stage_evaluate(run: DemoRun) -> dict:
    from diffusion4d.app.demo_sections import SAMPLES_METHOD

    _cli(
        [
            "evaluate", "--pred", f"{SAMPLES_METHOD}={run.generated_dir / 'prompts'}",
            "--pred", f"recon_of_gt={run.recon_dir / 'ground_truth'}",
            "--gt", str(run.curated_dir), "--metrics", run.cfg.eval_metrics,
            "--output", str(run.eval_dir), "--format", "md,csv,tex,json", "--device", run.device,
        ]
    )  # fmt: skip
    _cli(["evaluate", "--pred", f"sweep={run.generated_dir / 'sweep'}", "--gt", str(run.curated_dir),
          "--metrics", "motion", "--output", str(run.eval_dir / "motion"), "--format", "md,json"])  # fmt: skip
    return {}


def stage_report(run: DemoRun) -> dict:
    from diffusion4d.app.demo_sections import build_report

    report_path, metrics = build_report(run)
    result = {"report": str(report_path)}
    if run.cfg.check_browser:
        from diffusion4d.app.browser_check import check_media, find_chromium

        if find_chromium() is None:
            logger.warning("Chromium not found: report.html was not checked in a browser")
        else:
            check = check_media(report_path, screenshot=run.out / "report_screenshot.png")
            result["browser"] = {"videos": len(check.videos), "images": len(check.images), "ok": check.ok}
            if not check.ok:
                logger.warning("report.html: %d video(s) and %d image(s) did not load in headless Chromium: %s %s",
                               len(check.failed_videos), len(check.failed_images), check.failed_videos, check.failed_images)
    return result


STAGES: List[tuple] = [
    ("assets", stage_assets),
    ("curate", stage_curate),
    ("autoencoder", stage_autoencoder),
    ("train_prior", stage_train_prior),
    ("train", stage_train),
    ("generate", stage_generate),
    ("reconstruct", stage_reconstruct),
    ("evaluate", stage_evaluate),
    ("report", stage_report),
]


def load_demo_config(path: Optional[str], quick: bool, overrides: List[str]) -> DemoConfig:
    from diffusion4d.config import ConfigError

    preset = resolve_preset("demo", path or ("quick" if quick else "full"))
    try:
        return load_config(DemoConfig, preset, overrides)
    except ConfigError as err:
        raise UserError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from filelock import FileLock, Timeout

    from diffusion4d.io.paths import ensure_output_dir

    out = Path(args.output)
    cfg = load_demo_config(args.config, args.quick, list(args.overrides))
    ensure_output_dir(out)
    lock = FileLock(str(out / ".demo.lock"))  # one demo per output folder
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"another demo is writing to {out} (lock {out / '.demo.lock'} is held)") from None
    try:
        return _run_locked(args, out, cfg)
    finally:
        lock.release()


def _run_locked(args: argparse.Namespace, out: Path, cfg: DemoConfig) -> int:
    from diffusion4d.logging_utils import progress

    save_config(cfg, out / "demo_config.yaml")
    demo = DemoRun(out, cfg, args.device, args.force)
    start = time.perf_counter()
    bar = progress(total=len(STAGES), desc="demo", unit="stage", leave=True)
    try:
        for name, fn in STAGES:
            bar.set_description(f"demo: {name}")
            try:
                demo.run_stage(name, fn)
            except (RuntimeError, FileNotFoundError, UserError) as err:
                print(f"diffusion4d demo: stage '{name}' failed: {err}", file=sys.stderr)
                return 1
            bar.update(1)
    finally:
        bar.close()
    total = time.perf_counter() - start
    times = ", ".join(f"{n} {demo.state[n]['seconds']:.0f}s" for n, _ in STAGES)
    print(f"demo finished in {total:.0f} s ({times}); open {out / 'report.html'}")
    return 0
