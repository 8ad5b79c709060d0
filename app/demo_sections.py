"""The demo's ``report.html`` and ``metrics.json``: reads what each stage wrote and lays it out.

Nothing here computes a result of the method: numbers come from the stages' own files
(manifest, ``losses.jsonl``, ``generation.json``, recon ``metrics.json``, eval tables).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from diffusion4d.app import report as R
from diffusion4d.io import atomic_write_json, read_clip, read_manifest, read_video

if TYPE_CHECKING:  # pragma: no cover
    from diffusion4d.app.demo import DemoRun


def _clip_video(folder: Path, caption: str, fps: float = 6.0) -> str:
    clip = read_clip(folder)
    return R.video_tag(clip.frames, fps=fps, caption=caption)


def _read_losses(train_dir: Path) -> List[dict]:
    path = train_dir / "losses.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _smooth(values: List[float], window: int) -> List[float]:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return list(np.convolve(padded, kernel, mode="valid"))


def section_data(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    records = read_manifest(run.curated_dir / "manifest.jsonl")
    accepted = [r for r in records if r["status"] == "accepted"]
    figures = []
    for rec in accepted[:3]:
        uid = rec["uid"]
        figures.append(_clip_video(run.curated_dir / uid / "dynamic", f"dynamic orbit: {rec['caption']}"))
        figures.append(_clip_video(run.curated_dir / uid / "static", f"static orbit (m = {rec['motion_magnitude']:.4f})"))
    body = R.paragraph(
        "Each asset is rendered as a dynamic orbit (camera azimuth and animation time advance together) and a static "
        "orbit from the same cameras with the animation frozen at t0; the motion magnitude m (Eq. 1, per-pixel mean) "
        "is their mean squared difference."
    )
    body += R.row(figures)
    rows = [
        [r["uid"], r["caption"], r["status"], r["reason"], r.get("motion_magnitude") if r.get("motion_magnitude") is not None else float("nan")]
        for r in records
    ]
    body += R.table(["uid", "caption", "status", "reason", "m"], rows)
    counts: Dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    metrics["curation"] = {"counts": counts, "assets": len(records)}
    report.add("1. Curated orbital data", body)


def section_training(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    losses = _read_losses(run.train_dir)
    if not losses:
        report.add("2. Training", R.note("no losses.jsonl found"))
        return
    steps = [float(r["step"]) for r in losses]
    series = {}
    for key in ("loss", "loss_ldm", "loss_mr"):
        if key in losses[0]:
            vals = [float(r[key]) for r in losses]
            series[f"{key} (smoothed)"] = (steps, _smooth(vals, max(1, len(vals) // 20)))
    prior_losses = _read_losses(run.prior_dir)
    if prior_losses:  # stage 1, the 3D-aware prior on static orbits, which stage 2 starts from
        vals = [float(r["loss"]) for r in prior_losses]
        series["stage-1 prior loss (smoothed)"] = ([float(r["step"]) for r in prior_losses], _smooth(vals, max(1, len(vals) // 20)))
    body = R.line_plot(series, title="training loss", xlabel="step", ylabel="loss", log_y=True, width=640)
    first = float(np.mean([r["loss"] for r in losses[: max(1, len(losses) // 10)]]))
    last = float(np.mean([r["loss"] for r in losses[-max(1, len(losses) // 10):]]))
    if prior_losses:
        body += R.paragraph(f"Stage 1 trained the 3D-aware prior on the static orbits of every curated asset for {len(prior_losses)} "
                            "steps; stage 2 (below) started from it and stores it, frozen, as the prior of the 3D-aware guidance.")
    body += R.paragraph(f"Stage 2: {len(losses)} logged steps; mean loss over the first tenth {first:.4f}, over the last tenth {last:.4f}.")
    metrics["training"] = {"steps": int(steps[-1]), "loss_first_tenth": first, "loss_last_tenth": last}
    report.add("2. Training the tiny 4D-aware model", body)


def _generation(folder: Path) -> dict:
    """The sample's generation record as a dict ({} when absent)."""
    from diffusion4d.io.records import GENERATION_FILE, GenerationRecord

    record = GenerationRecord.read(folder / GENERATION_FILE)
    return record.to_json() if record is not None else {}


def section_generation(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    gen = run.state.get("generate", {})
    figures = []
    for sample in gen.get("samples", []):
        uid = sample["uid"]
        figures.append(_clip_video(run.generated_dir / "prompts" / uid / "dynamic", f"generated: {sample['caption']}"))
        figures.append(_clip_video(run.curated_dir / uid / "dynamic", "ground-truth render"))
    body = R.paragraph("Text-to-4D samples for training captions (the training distribution), next to the renders of the asset the caption describes.")
    body += R.row(figures)
    colours = _colour_check(run, gen.get("samples", []))
    if colours is not None:
        metrics["prompt_colour_match"] = colours
        per = "; ".join(
            f"{m['uid']}: nearest {m['nearest']} (own asset rank {m['rank']})" if m["rank"] else f"{m['uid']}: no foreground"
            for m in colours["per_sample"]
        )
        body += R.paragraph(
            f"Colour check (eval/colour_match.py, no pretrained weights): {colours['matched']} of {colours['samples']} samples have a "
            f"mean foreground colour nearest to their own asset's among the {colours['references']} curated assets ({per}; "
            f"rank 1 = nearest; assets of the same colour compete for rank 1)."
        )
    report.add("3. Generated orbital videos", body)

    sweep_dir = run.generated_dir / "sweep"
    items: List[Tuple[float, Path]] = []
    for sample in sorted(p for p in sweep_dir.iterdir() if (p / "dynamic").is_dir()) if sweep_dir.is_dir() else []:
        m = _generation(sample).get("motion_magnitude")
        items.append((float(m) if m is not None else float("nan"), sample))
    items.sort(key=lambda t: t[0])
    body = R.paragraph(f"One prompt ({gen.get('sweep_caption', '')!r}), one seed, several requested motion magnitudes m.")
    body += R.row([_clip_video(p / "dynamic", f"requested m = {m:g}") for m, p in items])
    motion = _motion_result(run)
    if motion:
        body += R.line_plot(
            {"measured deviation from the m = 0 sample": (motion["requested"], motion["measured"])},
            title="motion control",
            xlabel="requested m",
            ylabel="measured",
            markers=True,
        )
        rho = motion.get("spearman")
        verdict = "meets" if rho is not None and rho > 0.8 else "does NOT meet"
        body += R.paragraph(f"Spearman rank correlation requested vs measured: {rho if rho is not None else 'n/a'} ({verdict} the > 0.8 target).")
        metrics["motion_control"] = motion
    report.add("4. Motion-magnitude control", body)


def _colour_check(run: "DemoRun", samples: List[dict]) -> Optional[dict]:
    """diffusion4d.eval.colour_match of the generated samples against every accepted asset's dynamic orbit."""
    from diffusion4d.io import frames_to_float
    from diffusion4d.eval.colour_match import colour_match, summary

    if not samples:
        return None
    refs = {}
    for rec in read_manifest(run.curated_dir / "manifest.jsonl"):
        folder = run.curated_dir / rec["uid"] / "dynamic"
        if rec.get("status") == "accepted" and folder.is_dir():
            refs[rec["uid"]] = frames_to_float(read_clip(folder).frames)
    gen = {}
    for sample in samples:
        folder = run.generated_dir / "prompts" / sample["uid"] / "dynamic"
        if folder.is_dir():
            gen[sample["uid"]] = frames_to_float(read_clip(folder).frames)
    result = summary(colour_match(gen, refs))
    result["references"] = len(refs)
    return result


def _motion_result(run: "DemoRun") -> Optional[dict]:
    """The first motion-sweep group of the demo's motion evaluation (``motion_groups`` of eval's
    ``metrics.json``, :meth:`diffusion4d.eval.results.EvalResult.to_json`), or None."""
    path = run.eval_dir / "motion" / "metrics.json"
    if not path.exists():
        return None
    groups = json.loads(path.read_text()).get("motion_groups", {})
    for method_groups in groups.values():
        for group in method_groups:
            if group.get("requested") and group.get("measured"):
                return {"requested": group["requested"], "measured": group["measured"], "spearman": group.get("spearman")}
    return None


def section_recon(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    rec = run.state.get("reconstruct", {})
    uid = rec.get("uid")
    body = R.paragraph(
        "4D Gaussians (canonical Gaussians + HexPlane deformation) fitted to an orbital video: the generated one, and "
        "for reference the ground-truth render of the same asset. Turntable: fixed time, camera circling; over time: fixed front camera."
    )
    figures = []
    for name in ("generated", "ground_truth"):
        folder = run.recon_dir / name / str(uid)
        for video, label in (("turntable.mp4", "turntable"), ("over_time.mp4", "over time")):
            if (folder / video).exists():
                figures.append(R.video_tag(read_video(folder / video), caption=f"{name.replace('_', ' ')}: {label}"))
    body += R.row(figures)
    rows = []
    for name, m in rec.get("metrics", {}).items():
        rows.append([name, _num(m, "psnr"), _num(m, "ssim"), _num(m, "seconds")])
    body += R.table(["fitted to", "held-out PSNR", "held-out SSIM", "seconds"], rows)
    metrics["reconstruction"] = rec.get("metrics", {})
    report.add("5. 4D Gaussian reconstruction", body)


def _num(d: dict, key: str) -> float:
    """First numeric value under a key containing ``key`` (searching nested dicts)."""
    for k, v in d.items():
        if key in k.lower() and isinstance(v, (int, float)):
            return float(v)
    for v in d.values():
        if isinstance(v, dict):
            found = _num(v, key)
            if not math.isnan(found):
                return found
    return float("nan")


def section_metrics(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    body = ""
    for md in sorted(run.eval_dir.glob("*.md")):
        text = md.read_text()
        for block in text.split("\n\n"):
            converted = R.markdown_table_to_html(block)
            body += converted if converted else R.paragraph(block.strip().lstrip("#").strip())
    json_path = run.eval_dir / "metrics.json"
    if json_path.exists():
        metrics["evaluation"] = json.loads(json_path.read_text())
    report.add("6. Metric tables (eval/run_metrics.py)", body or R.note("no tables were written"))


def section_times(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    rows = [[name, entry.get("seconds", float("nan"))] for name, entry in run.state.items()]
    total = sum(entry.get("seconds", 0.0) for entry in run.state.values())
    rows.append(["total", total])
    metrics["stage_seconds"] = {name: entry.get("seconds") for name, entry in run.state.items()}
    report.add("7. Wall time per stage (seconds)", R.table(["stage", "seconds"], rows))


def build_report(run: "DemoRun") -> Tuple[Path, dict]:
    import platform

    report = R.Report(
        "Diffusion4D demo report",
        f"embedded default: procedural animated assets; device {run.device}; {platform.node()} ({platform.processor() or platform.machine()})",
    )
    metrics: dict = {}
    for section in (section_data, section_training, section_generation, section_recon, section_metrics, section_times):
        section(run, report, metrics)
    path = report.write(run.out / "report.html")
    atomic_write_json(run.out / "metrics.json", metrics)
    return path, metrics
