"""How often do the demo's targets hold? Rerun the later stages of one finished demo over several seeds.

The demo scores one trained model on one noise draw, so a single run says little about how often its
targets hold. This study keeps the demo's data, autoencoder and stage-1 prior, and for each pair
(stage-2 training seed T, sampling seed S) runs the rest of the demo again: stage 2 with
``stage2_overrides=[..., "seed=T"]`` (trained once per T, and taken from the demo, or from a pair of an
earlier study of this demo, that trained it with the same settings), then generation with
``sampling_seed=S``, reconstruction, evaluation and the report. It is
the demo's own code with the demo's own settings (``diffusion4d demo --config DEMO/demo_config.yaml``),
in one folder per pair, ``DEMO/seed_study/<label>/train<T>_noise<S>/``, whose finished stages are links
to the demo's; the demo's own pair is read from its ``metrics.json``. ``--set KEY=VALUE`` studies a
candidate setting of stage 2 or a later stage on the same data (label: the settings). Each target is
then counted over the pairs ("met on k of n"); peak memory is left out (a rerun process holds only
the later stages).

    python benchmarks/demo_seeds.py --demo demo_out --sampling-seeds 0,1000,2000 [--train-seeds 0,1] [--results benchmarks/RESULTS.md]
    python benchmarks/demo_seeds.py --demo demo_out --set 'stage2_overrides=["optim.lr_scheduler=cosine"]'

An interrupted study resumes: finished pairs are read back, an unfinished one continues from its last stage.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

#: stages whose results a pair reuses from the demo (stage 2 only when the pair trains with the demo's seed)
SHARED_STAGES = ("assets", "curate", "autoencoder", "train_prior")
#: stages every pair reruns (their seconds are a pair's cost)
LATER_STAGES = ("generate", "reconstruct", "evaluate", "report")
#: targets counted over the seeds (peak memory is a property of the whole demo process, not of a rerun)
COUNTED_TARGETS = ("iou", "colour", "spearman", "identity_iou", "recon_psnr")


def training_seed(cfg) -> int:
    """The seed stage 2 trains with: the last ``seed=`` of ``stage2_overrides``, else the demo's seed."""
    seed = cfg.seed
    for item in cfg.stage2_overrides:
        key, _, value = item.partition("=")
        if key.strip() == "seed":
            seed = int(value)
    return seed


def pair_overrides(cfg, train_seed: int, sampling_seed: int) -> List[str]:
    """Demo overrides of one pair: each seed only where it differs from ``cfg``'s (the stage-2 seed
    after ``cfg``'s own stage-2 overrides)."""
    overrides = [f"sampling_seed={sampling_seed}"] if sampling_seed != cfg.noise_seed() else []
    if train_seed != training_seed(cfg):
        overrides.append("stage2_overrides=" + json.dumps([*cfg.stage2_overrides, f"seed={train_seed}"]))
    return overrides


def prepare_pair(folder: Path, stages: Dict[str, Path]) -> None:
    """Make ``folder`` a demo folder whose stages ``stages`` (name -> finished demo folder holding it)
    are links to those folders' results, with their ``demo_state.json`` entries. Stages the pair
    already finished itself are kept (an interrupted study resumes), unless a linked stage's result is
    no longer the one they were made from (its source was redone since): then the pair's own stages
    after it are deleted, so they run again."""
    import shutil

    from diffusion4d.app.demo import STAGES, STATE_FILE, DemoRun
    from diffusion4d.io.records import DemoState

    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / STATE_FILE
    state = DemoState.read(state_path).stages if state_path.exists() else {}
    probe = DemoRun(folder, None, "cpu", False)
    order = [name for name, _ in STAGES]
    changed = []
    for name, source in stages.items():
        entry = DemoState.read(source / STATE_FILE).stages.get(name)
        if not entry or entry.get("status") != "done":
            raise SystemExit(f"demo_seeds: stage '{name}' has not finished in {source}")
        if name in state and state[name] != entry:
            changed.append(order.index(name))
        link, target = probe.stage_folder(name), DemoRun(source, None, "cpu", False).stage_folder(name)
        if link.is_symlink():
            link.unlink()
        elif link.exists():
            raise SystemExit(f"demo_seeds: {link} exists and is not a link to {target}; delete it to redo this pair")
        os.symlink(target.resolve(), link, target_is_directory=True)
        state[name] = entry
    if changed:
        for name in order[min(changed) + 1 :]:
            if name in stages or state.pop(name, None) is None:
                continue
            own = probe.stage_folder(name)
            if own is not None and own.exists() and not own.is_symlink():
                shutil.rmtree(own)
    DemoState(stages=state).write(state_path)


def check_reused(folder: Path, cfg, names: Sequence[str]) -> None:
    """Fail when a linked stage would be redone with ``cfg`` (the demo would delete a link's target)."""
    from diffusion4d.app.demo import DemoRun

    run = DemoRun(folder, cfg, "cpu", False)
    for name in names:
        changed = run.changed_settings(name)
        if changed:
            raise SystemExit(f"demo_seeds: stage '{name}' of {folder} would be redone (settings changed: {', '.join(changed)})")


def find_trained(demo: Path, cfg) -> Optional[Path]:
    """A finished folder under ``demo`` whose own stage 2 is the one ``cfg`` trains: the demo itself, or a
    pair of any earlier study of this demo (a study of a later stage's setting then retrains nothing).
    A pair qualifies only while its shared stages are still the demo's (same ``demo_state.json`` entries)."""
    from diffusion4d.app.demo import STATE_FILE, DemoRun
    from diffusion4d.io.records import DemoState

    demo_state = DemoState.read(demo / STATE_FILE).stages
    for folder in [demo, *sorted(demo.glob("seed_study/*/train*_noise*"))]:
        if not (folder / STATE_FILE).is_file():
            continue
        run = DemoRun(folder, cfg, "cpu", False)
        own = run.stage_folder("train")
        if run.changed_settings("train") != [] or own.is_symlink() or not own.is_dir():
            continue
        if all(run.state.get(name) == demo_state.get(name) for name in SHARED_STAGES):
            return folder
    return None


def run_pair(demo: Path, folder: Path, overrides: Sequence[str]) -> None:
    """``diffusion4d demo`` on the pair's folder in a fresh process (as a user runs it)."""
    cmd = [sys.executable, "-c", "import sys; from diffusion4d.app import main; sys.exit(main(sys.argv[1:]))",
           "demo", "--output", str(folder), "--config", str(demo / "demo_config.yaml"), *overrides]  # fmt: skip
    print("+ diffusion4d " + " ".join(cmd[3:]), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"demo_seeds: the demo failed in {folder}")


def frame_change(folder: Path) -> Dict[str, Optional[float]]:
    """What no target measures (no bar): the samples' mean view IoU gain (``view_iou`` of the demo's
    evaluation; None when it did not compute it) and, per sweep, the measured motion at the largest m."""
    from diffusion4d.app.demo_sections import SAMPLES_METHOD

    def read(path: Path) -> dict:
        return json.loads(path.read_text()) if path.is_file() else {}

    view = read(folder / "eval" / "metrics.json").get("summary", {}).get(SAMPLES_METHOD, {}).get("view_iou", {}).get("mean")
    groups = read(folder / "metrics.json").get("motion_control", {}).get("groups", [])
    return {"view_iou": view, "motion_at_max": [g["measured"][-1] for g in groups if g.get("measured")]}


def all_met(targets: dict) -> bool:
    """Whether a pair met every counted target (an unmeasured one counts as missed)."""
    return all(targets.get(k, {}).get("met") for k in COUNTED_TARGETS)


def count_met(rows: List[dict]) -> Dict[str, str]:
    """Per target, and for all counted targets together: "k of n" over the rows that measured it."""
    counts = {}
    for key in COUNTED_TARGETS:
        verdicts = [r["targets"][key]["met"] for r in rows if r["targets"].get(key, {}).get("met") is not None]
        counts[key] = f"{sum(verdicts)} of {len(verdicts)}"
    every = [all_met(r["targets"]) for r in rows]
    counts["all"] = f"{sum(every)} of {len(every)}"
    return counts


def table(rows: List[dict]) -> List[str]:
    def cell(t: dict) -> str:
        value = t.get("value")
        text = "n/a" if value is None else f"{value:.3g}"
        return text + ("" if t.get("met") else " (x)")

    def change(r: dict) -> str:
        view = r["change"]["view_iou"]
        return ("n/a" if view is None else f"{view:.3f}") + " | " + (" / ".join(f"{m:.1e}" for m in r["change"]["motion_at_max"]) or "n/a")

    lines = ["| stage-2 seed | sampling seed | IoU | colour | rho | identity | recon dB | all met | view IoU gain | motion at max m | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["targets"]
        lines.append(f"| {r['train_seed']} | {r['sampling_seed']} | " + " | ".join(cell(t.get(k, {})) for k in COUNTED_TARGETS)
                     + f" | {'yes' if all_met(t) else 'no'} | {change(r)} | {r['seconds']:.0f} |")
    counts = count_met(rows)
    views = [r["change"]["view_iou"] for r in rows if r["change"]["view_iou"] is not None]
    lines.append("| **met on** | | " + " | ".join(counts[k] for k in COUNTED_TARGETS) + f" | {counts['all']} | | | |")
    view_mean = f"{sum(views) / len(views):.3f}" if views else "n/a"
    lines.append("| mean | | " + " | ".join(_mean(rows, k) for k in COUNTED_TARGETS) + f" | | {view_mean} | | |")
    return lines


def _mean(rows: List[dict], key: str) -> str:
    values = [r["targets"][key]["value"] for r in rows if isinstance(r["targets"].get(key, {}).get("value"), (int, float))]
    return f"{sum(values) / len(values):.3g}" if values else "n/a"


def study_label(settings: Sequence[str]) -> str:
    """Folder name of a study: ``demo`` for the demo's own settings, else the settings, made safe (at most 100
    characters: a longer text is cut and ends with a hash of the whole)."""
    if not settings:
        return "demo"
    import hashlib

    text = "_".join(settings)
    safe = "".join(ch if ch.isalnum() or ch in "._=-" else "-" for ch in text)
    if len(safe) <= 100:
        return safe
    # cut long labels, and keep settings that differ only after the cut in separate folders
    return safe[:89] + "-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", required=True, help="a finished demo output folder")
    p.add_argument("--sampling-seeds", default="0,1000,2000", help="comma list of noise seeds of the generate stage")
    p.add_argument("--train-seeds", default=None, help="comma list of stage-2 training seeds (default: the demo's own)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a demo setting of the candidate studied (repeatable; stage 2 and later stages only), "
                        "e.g. 'stage2_overrides=[\"optim.lr_scheduler=cosine\"]'")
    p.add_argument("--results", default=None, help="append a section to this RESULTS.md")
    args = p.parse_args(argv)

    from diffusion4d.app.demo import STAGES, DemoRun, load_demo_config

    demo = Path(args.demo)
    config = demo / "demo_config.yaml"
    if not config.is_file():
        raise SystemExit(f"demo_seeds: {demo} is not a demo folder (no demo_config.yaml)")
    base = load_demo_config(str(config), False, args.settings)
    own = training_seed(base)
    train_seeds = [int(x) for x in args.train_seeds.split(",")] if args.train_seeds else [own]
    sampling_seeds = [int(x) for x in args.sampling_seeds.split(",")]
    rows = []
    for t in train_seeds:
        trained: Optional[Path] = None  # a finished folder holding stage 2 of this pair's settings
        for s in sampling_seeds:
            overrides = [*args.settings, *pair_overrides(base, t, s)]
            cfg = load_demo_config(str(config), False, overrides)
            as_demo = DemoRun(demo, cfg, "cpu", False)
            if all(as_demo.changed_settings(name) == [] for name, _ in STAGES) and (demo / "metrics.json").is_file():
                # the demo itself ran with exactly these settings: read it back
                seconds = sum(as_demo.state[name].get("seconds", 0.0) for name in LATER_STAGES)
                rows.append({"train_seed": t, "sampling_seed": s, "targets": json.loads((demo / "metrics.json").read_text())["targets"],
                             "change": frame_change(demo), "seconds": seconds})
                continue
            if trained is None:
                trained = find_trained(demo, cfg)
            folder = demo / "seed_study" / study_label(args.settings) / f"train{t}_noise{s}"
            shared = {name: demo for name in SHARED_STAGES}
            if trained is not None and trained != folder:
                shared["train"] = trained
            prepare_pair(folder, shared)
            check_reused(folder, cfg, list(shared))
            run_pair(demo, folder, overrides)
            # the stages this pair ran itself (from its state, so a pair read back reports the same)
            own_stages = DemoRun(folder, cfg, "cpu", False).state
            seconds = sum(entry.get("seconds", 0.0) for name, entry in own_stages.items() if name not in shared)
            trained = trained or folder
            metrics = json.loads((folder / "metrics.json").read_text())
            rows.append({"train_seed": t, "sampling_seed": s, "targets": metrics["targets"], "change": frame_change(folder), "seconds": seconds})
            print(json.dumps({"train_seed": t, "sampling_seed": s, **{k: metrics["targets"][k]["value"] for k in COUNTED_TARGETS}}), flush=True)
    lines = table(rows)
    print("\n".join(lines))
    if args.results:
        head = [
            "",
            f"### Demo targets over seeds ({datetime.date.today().isoformat()}, {platform.node()}, CPU)",
            "",
            f"Command: `python benchmarks/demo_seeds.py --demo {args.demo} --sampling-seeds {args.sampling_seeds}"
            + (f" --train-seeds {args.train_seeds}" if args.train_seeds else "") + "".join(f" --set '{x}'" for x in args.settings) + "`; (x): target missed; view IoU gain (mean of the samples) and the measured motion at the largest m (per sweep) have no bar; seconds: the stages the pair ran itself (stage 2 in the first pair of a training seed, then generation to report).",
            "",
        ]
        with open(args.results, "a") as f:
            f.write("\n".join(head + lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
