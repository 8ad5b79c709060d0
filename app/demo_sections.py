"""The demo's ``report.html`` and ``metrics.json``: reads what each stage wrote and lays it out.

Nothing here computes a result of the method: numbers come from the stages' own files
(manifest, ``losses.jsonl``, ``generation.json``, recon ``metrics.json``, eval tables).
"""

from __future__ import annotations

import json
import math
import operator
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


def _rgb_frames(folder: Path) -> np.ndarray:
    """A clip's frames over white as ``[F, H, W, 3]`` uint8 (for :func:`report.frame_sheet`)."""
    from diffusion4d.app.generate import to_uint8
    from diffusion4d.io import frames_to_float

    return to_uint8(frames_to_float(read_clip(folder).frames))


def _sheet(folders: List[Path], caption: str) -> str:
    """Every frame of each clip folder that exists, one row per clip, as a report figure ('' when none exists)."""
    rows = [_rgb_frames(f) for f in folders if f.is_dir()]
    if not rows or len({r.shape[1:] for r in rows}) != 1:
        return ""
    return R.image_tag(R.frame_sheet(rows, scale=2 if rows[0].shape[2] <= 64 else 1), caption, sheet=True)


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


def _variants_paragraph(run: "DemoRun") -> str:
    """What the training-only variants in the table are (amplitude variants, motion swaps), when there are any."""
    from diffusion4d.app.demo import asset_records

    rows = asset_records(run.assets_dir)
    scales = sorted({float(r.get("amplitude_scale", 1.0)) for r in rows} - {1.0}, reverse=True)
    parts = []
    if scales:
        names = " / ".join(f"-a{a:g}" for a in scales)
        parts.append(f"Assets named <uid>{names} are the same objects moving with {' / '.join(f'{a:g}' for a in scales)} "
                     "of their amplitude: each object is trained at several magnitudes, so m cannot stand in for the caption.")
    if any(r.get("motion_from") is not None for r in rows):
        parts.append("Assets named <uid>-m<index> are the same objects moving as asset <index> moves (motion swaps): "
                     "each motion is trained on several objects.")
    if not parts:
        return ""
    return R.paragraph(" ".join(parts) + " These renders are training data only; the original assets are sampled and scored below.")


def section_data(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    records = read_manifest(run.curated_dir / "manifest.jsonl")
    accepted = [r for r in records if r["status"] == "accepted"]
    shown, captions = [], set()
    from diffusion4d.app.demo import training_variants

    variants = training_variants(run.assets_dir)
    for r in sorted(accepted, key=lambda r: (r["uid"] in variants, r["uid"])):  # the originals first
        if r["caption"] not in captions:
            shown.append(r)
            captions.add(r["caption"])
    figures = []
    for rec in shown[:3]:  # three different captions (amplitude variants share their asset's caption)
        uid = rec["uid"]
        figures.append(_clip_video(run.curated_dir / uid / "dynamic", f"dynamic orbit: {rec['caption']}"))
        figures.append(_clip_video(run.curated_dir / uid / "static", f"static orbit (m = {rec['motion_magnitude']:.4f})"))
    body = R.paragraph(
        "Each asset is rendered as a dynamic orbit (camera azimuth and animation time advance together) and a static "
        "orbit from the same cameras with the animation frozen at t0; the motion magnitude m (Eq. 1, per-pixel mean) "
        "is their mean squared difference."
    )
    body += _variants_paragraph(run)
    body += R.row(figures)
    rows = [
        [r["uid"], r["caption"], r["status"], r["reason"], r.get("motion_magnitude") if r.get("motion_magnitude") is not None else float("nan")]
        for r in sorted(records, key=lambda r: r["uid"])
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
    body += _autoencoder_paragraph(run, metrics)
    report.add("2. Training the tiny 4D-aware model", body)


def _autoencoder_paragraph(run: "DemoRun", metrics: dict) -> str:
    """The latent space's own limit on colour: how far the autoencoder's round trip moves an object's mean colour."""
    ae = run.state.get("autoencoder") or {}
    if not ae.get("folder"):
        return ""
    metrics["autoencoder"] = {k: v for k, v in ae.items() if k != "folder"}
    text = f"Both stages work on the latents of a small autoencoder fitted to the curated renders ({_fmt(ae.get('psnr_train'), 1)} dB PSNR on its training frames)."
    if ae.get("colour_error_train") is not None:
        text += (f" Its round trip moves an object's mean colour by {ae['colour_error_train']:.3f} on average (RGB in [0, 1]; worst "
                 f"{ae['colour_error_train_max']:.3f}, {ae['colour_error_worst']}): the samples' colours cannot be truer than that.")
    if ae.get("latent_eigenvalues"):
        text += (" The latents are whitened (every direction at unit variance); before whitening, the variances along their "
                 f"principal directions were {', '.join(f'{e:.2g}' for e in reversed(ae['latent_eigenvalues']))}.")
    return R.paragraph(text)


def _generation(folder: Path) -> dict:
    """The sample's generation record as a dict ({} when absent)."""
    from diffusion4d.io.records import GENERATION_FILE, GenerationRecord

    record = GenerationRecord.read(folder / GENERATION_FILE)
    return record.to_json() if record is not None else {}


#: the method name the demo's text-to-4D samples are evaluated under (``diffusion4d evaluate --pred NAME=...``)
SAMPLES_METHOD = "diffusion4d_tiny"
#: the demo's targets for the tiny model (docs/training.md, "The demo's model")
TARGETS = {"iou": 0.6, "colour": 0.8, "spearman": 0.9, "identity_iou": 0.8, "recon_psnr": 22.0, "peak_memory_gb": 4.0}
#: how a target's value compares with its bar where it is not a lower bound (``>=``): peak memory must stay
#: below 4 GiB, the wall time may reach its budget (``DemoConfig.time_target_minutes``) but not exceed it
BOUNDS = {"peak_memory_gb": "<", "wall_minutes": "<="}
_COMPARE = {">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _eval_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def section_generation(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    gen = run.state.get("generate", {})
    samples = gen.get("samples", [])
    figures = []
    for sample in samples:
        uid = sample["uid"]
        figures.append(_clip_video(run.generated_dir / "prompts" / uid / "dynamic", f"generated: {sample['caption']}"))
        figures.append(_clip_video(run.curated_dir / uid / "dynamic", "ground-truth render"))
    body = R.paragraph("Text-to-4D samples for training captions (the training distribution), next to the renders of the asset "
                       "the caption describes, at the size they were generated.")
    body += R.row(figures)
    pairs = [folder for sample in samples
             for folder in (run.curated_dir / sample["uid"] / "dynamic", run.generated_dir / "prompts" / sample["uid"] / "dynamic")]
    body += _sheet(pairs, "every frame of the orbits: per caption, its asset's ground-truth render (upper row) and the sample (lower row)")
    evaluation = _eval_json(run.eval_dir / "metrics.json")
    per_asset = evaluation.get("per_asset", {}).get(SAMPLES_METHOD, {})
    colours = _colour_check(evaluation, samples)
    rows, ious = [], []
    by_uid = {m["uid"]: m for m in (colours or {}).get("per_sample", [])}
    for sample in samples:
        uid = sample["uid"]
        row = per_asset.get(uid, {})
        iou = row.get("iou")
        if isinstance(iou, (int, float)):
            ious.append(float(iou))
        match = by_uid.get(uid, {})
        rows.append([sample["caption"], _float(iou), _float(row.get("psnr")), match.get("rank") or "-", match.get("nearest") or "-",
                     _float(row.get("view_iou")), _float(_own_view_iou(run.curated_dir / uid / "dynamic"))])
    body += R.table(["caption", "silhouette IoU vs own asset", "PSNR vs own asset", "colour rank of own asset", "nearest asset by colour",
                     "view IoU gain", "its asset's own"], rows)
    result = {"captions": len(samples), "iou_mean": float(np.mean(ious)) if ious else None}
    if colours is not None:
        result["colour_matched"] = colours["matched"]
        result["colour_share"] = colours["matched"] / max(colours["samples"], 1)
        result["colour_references"] = colours["references"]
    metrics["prompts"] = result
    body += R.paragraph(
        f"Mean silhouette IoU with the caption's own asset: {_fmt(result['iou_mean'])} (target >= {TARGETS['iou']}); "
        f"colour nearest to the own asset among the {result.get('colour_references', 0)} curated assets for "
        f"{result.get('colour_matched', 0)} of {len(samples)} captions (target >= {TARGETS['colour']:.0%}). "
        "Silhouettes and colours use the metrics module's one threshold on the distance to the white background. "
        "View IoU gain (no target): how much better each frame's silhouette matches the asset's frame of the same view than "
        "its other frames; 0 for a sample that shows one silhouette in every view, and next to it the asset's own render "
        "against itself (near 0 for an object that looks the same from every side)."
    )
    report.add("3. Generated orbital videos", body)
    _section_sweeps(run, report, metrics)
    _section_probe(run, report, metrics)


def _own_view_iou(folder: Path) -> Optional[float]:
    """``view_iou_gain`` of a ground-truth orbit against itself: what following every view is worth there."""
    from diffusion4d.io import frames_to_float
    from diffusion4d.metrics import to_tensor, view_iou_gain

    if not folder.is_dir():
        return None
    frames = to_tensor(frames_to_float(read_clip(folder).frames))
    return view_iou_gain(frames, frames) if frames.shape[0] > 1 else None


def _float(value) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _section_sweeps(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    gen = run.state.get("generate", {})
    sweep_dir = run.generated_dir / "sweep"
    groups = []
    for method_groups in _eval_json(run.eval_dir / "motion" / "metrics.json").get("motion_groups", {}).values():
        groups += method_groups
    body = R.paragraph("For each swept caption: one seed, requested motion magnitudes from 0 to the largest in the training data. "
                       "Measured motion: Eq. 1 against the m = 0 sample. Identity: frame 0 of each sample against the m = 0 sample's "
                       "(silhouette IoU, distance of mean foreground colours). Colour drift, which frame 0 cannot show and which has "
                       "no target: the largest distance between the mean foreground colour of a sample's frame and of its own frame 0.")
    rhos, identity_ious, drifts = [], [], []
    for group in groups:
        names = group.get("samples", [])
        body += R.row([_clip_video(sweep_dir / n / "dynamic", f"m = {m:g}") for n, m in zip(names, group.get("requested", []))
                       if (sweep_dir / n / "dynamic").is_dir()])
        body += _sheet([sweep_dir / n / "dynamic" for n in names], "every frame of the sweep, one row per requested m (top: m = 0)")
        measured = [v if v is not None else float("nan") for v in group.get("measured", [])]
        body += R.line_plot({"measured": (group.get("requested", []), measured)}, title=f"motion control: {group.get('prompt', '')}",
                            xlabel="requested m", ylabel="measured", markers=True)
        rho = group.get("spearman")
        ids = [v for v in group.get("identity_iou", []) if isinstance(v, (int, float))]
        cols = [v for v in group.get("identity_colour", []) if isinstance(v, (int, float))]
        if rho is not None:
            rhos.append(rho)
        identity_ious += ids
        drift = [v for v in group.get("colour_drift", []) if isinstance(v, (int, float))]
        drifts += drift
        own = _own_colour_drift(run, gen.get("sweeps", []), group.get("prompt"))
        top = next(((r, m) for r, m in zip(reversed(group.get("requested", [])), reversed(group.get("measured", []))) if m is not None), None)
        body += R.paragraph(f"Spearman rho {_fmt(rho)} (target >= {TARGETS['spearman']}); identity: min IoU {_fmt(min(ids) if ids else None)}, "
                            f"max colour distance {_fmt(max(cols) if cols else None)}; colour drift over the orbit: max {_fmt(max(drift) if drift else None)} "
                            f"(its asset's own render: {_fmt(own)})"
                            + (f"; measured motion at the largest m: {top[1]:.2g} (requested {top[0]:.2g})." if top else "."))
    metrics["motion_control"] = {
        "groups": groups, "sweep": gen.get("sweep"),
        "spearman_mean": float(np.mean(rhos)) if rhos else None,
        "identity_iou_min": float(min(identity_ious)) if identity_ious else None,
        "colour_drift_max": float(max(drifts)) if drifts else None,
    }
    report.add("4. Motion-magnitude control", body)


def _own_colour_drift(run: "DemoRun", sweeps: List[dict], prompt: Optional[str]) -> Optional[float]:
    """Colour drift of the swept caption's own asset in its ground-truth dynamic orbit: how much the mean
    colour of a real render changes over the orbit (a multi-coloured object shows other sides)."""
    from diffusion4d.eval.motion_control import colour_drift
    from diffusion4d.io import frames_to_float

    uid = next((s["uid"] for s in sweeps if s.get("caption") == prompt), None)
    folder = run.curated_dir / str(uid) / "dynamic"
    return colour_drift(frames_to_float(read_clip(folder).frames)) if uid and folder.is_dir() else None


def _section_probe(run: "DemoRun", report: R.Report, metrics: dict) -> None:
    probes = run.state.get("generate", {}).get("probes", [])
    if not probes:
        return
    body = R.paragraph("Captions that recombine attributes seen in training but never together (no bar): each sample next to the "
                       "training assets its colour, shape and motion come from.")
    for probe in probes:
        figures = [_clip_video(run.generated_dir / "probe" / probe["name"] / "dynamic", f"generated: {probe['caption']}")]
        for what, uid in probe.get("from", {}).items():
            if (run.curated_dir / uid / "dynamic").is_dir():
                figures.append(_clip_video(run.curated_dir / uid / "dynamic", f"{what} from {uid}"))
        body += R.row(figures)
    metrics["probe"] = probes
    report.add("4b. Generalisation probe", body)


def _colour_check(evaluation: dict, samples: List[dict]) -> Optional[dict]:
    """The samples' colour check as ``diffusion4d evaluate`` made it (:mod:`diffusion4d.eval.colour_match`
    against every accepted asset, renders of one object counted once), read from its metrics.json."""
    record = evaluation.get("colour_matches", {}).get(SAMPLES_METHOD)
    if not samples or not record:
        return None
    wanted = {sample["uid"] for sample in samples}
    per_sample = [m for m in record["per_sample"] if m["uid"] in wanted]
    return {"matched": sum(m["rank"] == 1 for m in per_sample), "samples": len(per_sample), "per_sample": per_sample,
            "references": record["references"]}


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
    from diffusion4d.io.records import ReconMetrics

    for name, m in rec.get("metrics", {}).items():
        r = ReconMetrics.from_json(m, f"reconstruct/{name}")
        rows.append([name, _float(r.psnr_heldout), _float(r.ssim_heldout), _float(r.seconds())])
    body += R.table(["fitted to", "held-out PSNR", "held-out SSIM", "seconds"], rows)
    metrics["reconstruction"] = rec.get("metrics", {})
    report.add("5. 4D Gaussian reconstruction", body)


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
    rows = [[name, entry.get("seconds", float("nan")), entry.get("peak_rss_mb", float("nan"))] for name, entry in run.state.items()]
    total = sum(entry.get("seconds", 0.0) for entry in run.state.values())
    rows.append(["total", total, float("nan")])
    metrics["stage_seconds"] = {name: entry.get("seconds") for name, entry in run.state.items()}
    peaks = [entry["peak_rss_mb"] for entry in run.state.values() if isinstance(entry.get("peak_rss_mb"), (int, float))]
    metrics["peak_memory_gb"] = round(max(peaks) / 1024.0, 2) if peaks else None
    metrics["wall_minutes"] = demo_wall_minutes(run)
    metrics["time_target_minutes"] = run.cfg.time_target_minutes
    wall = ("stages done by an earlier invocation were reused, so this process's wall time is not the demo's"
            if metrics["wall_minutes"] is None else
            f"{metrics['wall_minutes'] * 60:.0f} s from the start of this process to this report (start-up and imports "
            f"included; the stages add up to {total:.0f} s).")  # fmt: skip
    report.add(
        "7. Wall time and memory per stage",
        R.table(["stage", "seconds", "peak resident memory so far (MiB)"], rows)
        + R.note(f"Every stage runs in the demo's process; its peak resident size (getrusage) only grows. Wall time: {wall}"),
    )


def demo_wall_minutes(run: "DemoRun") -> Optional[float]:
    """Minutes from the start of the demo's process to now, when this process ran every stage so far;
    None when it reused stages of an earlier invocation."""
    from diffusion4d.app.demo import process_wall_seconds

    if run.resumed:
        return None
    return round(process_wall_seconds() / 60.0, 2)


def targets(metrics: dict) -> Dict[str, dict]:
    """Each demo target: the measured value, the bar, whether it is met (None: not measured)."""
    recon = metrics.get("reconstruction", {}).get("generated", {})
    values = {
        "iou": (metrics.get("prompts", {}).get("iou_mean"), TARGETS["iou"]),
        "colour": (metrics.get("prompts", {}).get("colour_share"), TARGETS["colour"]),
        "spearman": (metrics.get("motion_control", {}).get("spearman_mean"), TARGETS["spearman"]),
        "identity_iou": (metrics.get("motion_control", {}).get("identity_iou_min"), TARGETS["identity_iou"]),
        "recon_psnr": (recon.get("psnr_heldout"), TARGETS["recon_psnr"]),
        "peak_memory_gb": (metrics.get("peak_memory_gb"), TARGETS["peak_memory_gb"]),
    }
    if metrics.get("time_target_minutes") is not None:  # the preset's time budget (full 10, quick 3 minutes)
        values["wall_minutes"] = (metrics.get("wall_minutes"), metrics["time_target_minutes"])

    def met(key: str, value, bar) -> Optional[bool]:
        return None if value is None else bool(_COMPARE[BOUNDS.get(key, ">=")](value, bar))

    return {k: {"value": v, "target": t, "met": met(k, v, t)} for k, (v, t) in values.items()}


def build_report(run: "DemoRun") -> Tuple[Path, dict]:
    import platform

    report = R.Report(
        "Diffusion4D demo report",
        f"embedded default: procedural animated assets; device {run.device}; {platform.node()} ({platform.processor() or platform.machine()})",
    )
    metrics: dict = {}
    for section in (section_data, section_training, section_generation, section_recon, section_metrics, section_times):
        section(run, report, metrics)
    metrics["targets"] = targets(metrics)
    labels = {"iou": "silhouette IoU of caption samples with their own asset", "colour": "share of captions whose colour is nearest to their own asset",
              "spearman": "Spearman rho of the motion sweeps (mean)", "identity_iou": "frame-0 IoU of every sweep sample with its m = 0 sample (min)",
              "recon_psnr": "held-out PSNR of the 4D reconstruction of a generated orbit (dB)",
              "peak_memory_gb": "peak resident memory of the demo process (GiB)",
              "wall_minutes": "wall time from the process start to this report (minutes)"}
    rows = [[labels[k], _float(t["value"]), f"{BOUNDS.get(k, '>=')} {t['target']}", {True: "met", False: "NOT met", None: "not measured"}[t["met"]]]
            for k, t in metrics["targets"].items()]
    report.add("8. Targets of the demo's model", R.table(["what", "value", "target", "verdict"], rows))
    path = report.write(run.out / "report.html")
    atomic_write_json(run.out / "metrics.json", metrics)
    return path, metrics
