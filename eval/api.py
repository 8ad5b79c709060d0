"""``run_metrics``: score one or more methods' clips against ground-truth renders.

Data layout (the clip contract of :mod:`diffusion4d.io`): every ``DIR`` holds ``<uid>/<mode>/``
clips (``mode`` = ``dynamic``, orbit 0 starting at the front); predictions and ground truth are
matched by ``uid``. Generated samples carry ``<uid>/generation.json``, reconstructions
``<uid>/metrics.json``; captions come from generation.json's prompt or ``<gt>/<uid>/meta.json``.

Frames are compared as RGB in [0, 1] composited over WHITE. See docs/evaluation.md for the
protocol of each metric and the weight files they need.
"""

from __future__ import annotations

import math
import pickle
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from diffusion4d.errors import UserError
from diffusion4d.io import frames_to_float, list_clip_dirs, read_clip
from diffusion4d.logging_utils import get_logger, progress
from diffusion4d import weights as W
from diffusion4d.eval.eval_config import PIXEL_METRICS, EvalConfig
from diffusion4d.eval.results import METRIC_INFO, EvalResult, Summary, summarize
from diffusion4d.eval.tables import write_tables

log = get_logger(__name__)

CLIP_METRICS = ("clip_f", "clip_o", "clip_text")
FVD_BATCH = 8  # I3D clips per forward pass


# --------------------------------------------------------------------------------------------
# models


@dataclass
class _Models:
    clip: Any = None
    lpips: Any = None
    fvd: Any = None
    missing: Dict[str, str] = field(default_factory=dict)  # metric -> reason


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda but no CUDA device is available (use --device cpu)")
    return device


def _resolve_weights(cfg: EvalConfig) -> Dict[str, Union[str, Path, W.MissingWeights]]:
    """Locate every network the requested metrics need (cheap: no model is loaded, no torch import).

    With ``cfg.strict`` a missing one raises :class:`UserError` here, before any work is done.
    """
    found: Dict[str, Union[str, Path, W.MissingWeights]] = {}
    if any(m in CLIP_METRICS for m in cfg.metrics):
        found["clip"] = W.resolve_clip(cfg.clip_model, cfg.weights_dir)
    if "lpips" in cfg.metrics:
        found["lpips"] = W.resolve_lpips_backbone(cfg.lpips_net, cfg.weights_dir)
    if "fvd" in cfg.metrics:
        found["fvd"] = W.resolve_i3d(cfg.weights_dir)
    if cfg.strict:
        for where in found.values():
            if isinstance(where, W.MissingWeights):
                raise UserError(where.line())
    return found


def _load_models(cfg: EvalConfig, found: Dict[str, Any], device: str, result: EvalResult) -> _Models:
    """Load the located networks; a missing or unusable one marks its metrics n/a (or raises with --strict)."""
    models = _Models()
    clip_wanted = [m for m in cfg.metrics if m in CLIP_METRICS]

    def missing(metrics: Sequence[str], miss: W.MissingWeights) -> None:
        if cfg.strict:
            raise UserError(miss.line())
        for m in metrics:
            models.missing[m] = miss.line()
        result.note(f"{', '.join(metrics)}: n/a for every method. {miss.line()}")

    for name, metrics in (("clip", clip_wanted), ("lpips", ["lpips"]), ("fvd", ["fvd"])):
        where = found.get(name)
        if where is None:
            continue
        if isinstance(where, W.MissingWeights):
            missing(metrics, where)
            continue
        try:
            if name == "clip":
                from diffusion4d.eval.clip_scores import ClipScorer

                models.clip = ClipScorer.from_pretrained(str(where), device)
                result.settings["clip_model"] = str(where)
            elif name == "lpips":
                from diffusion4d.metrics import build_lpips

                models.lpips = build_lpips(where, cfg.lpips_net, device)
                result.settings["lpips_backbone"] = str(where)
            else:
                from diffusion4d.eval.fvd_metric import load_detector

                models.fvd = load_detector(where, device)
                result.settings["i3d_detector"] = str(where)
        except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as err:
            # a corrupt or wrong file: reported like a missing one (ClipLoadError is a RuntimeError)
            from diffusion4d.eval.clip_scores import ClipLoadError

            miss = err.missing if isinstance(err, ClipLoadError) else W.MissingWeights(
                name, str(where), [str(where)], f"unusable file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
            )
            missing(metrics, miss)
    return models


# --------------------------------------------------------------------------------------------
# per-asset computation


def _azimuths(cameras) -> List[float]:
    return [float(f.azimuth) for f in cameras.frames]


def _front_index(cameras) -> int:
    az = np.asarray(_azimuths(cameras))
    return int(np.argmin(np.abs((az + 180.0) % 360.0 - 180.0)))


def _load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return frames_to_float(np.asarray(img.convert("RGBA"))[None])[0]


class _Evaluator:
    def __init__(self, cfg: EvalConfig, models: _Models, result: EvalResult):
        self.cfg, self.models, self.result = cfg, models, result
        self.gt_cache: Dict[str, Any] = {}
        self.fvd_gt_queued: Set[str] = set()  # gt clips already queued for FVD
        self.gt_embeds: Dict[str, Any] = {}
        self.text_cache: Dict[str, Any] = {}
        self.reasons: Dict[Tuple[str, str], Counter] = defaultdict(Counter)
        # FVD: I3D inputs are queued and run in batches; features are keyed "pred:<method>:<uid>" / "gt:<dir>"
        self.fvd_queue: List[Tuple[str, Any]] = []
        self.fvd_features: Dict[str, np.ndarray] = {}
        self.fvd_pairs: Dict[str, List[Tuple[str, str]]] = {}  # method -> [(pred key, gt key)]
        self.colours: Dict[str, Dict[str, Any]] = {}  # method -> uid -> mean foreground RGB (or None)
        self.gt_colours: Dict[str, Any] = {}  # gt clip dir -> mean foreground RGB (or None), see gt_colour

    # -- cached loads --
    def gt_colour(self, clip_dir: Path):
        """Mean foreground RGB of a ground-truth clip (cached; None when it has no foreground)."""
        from diffusion4d.eval.colour_match import foreground_mean_colour

        key = str(clip_dir)
        if key not in self.gt_colours:
            self.gt_colours[key] = foreground_mean_colour(frames_to_float(self.gt_clip(clip_dir).frames))
        return self.gt_colours[key]

    def gt_clip(self, clip_dir: Path):
        key = str(clip_dir)
        if key not in self.gt_cache:
            self.gt_cache[key] = read_clip(clip_dir)
        return self.gt_cache[key]

    def text_embedding(self, text: str):
        if text not in self.text_cache:
            self.text_cache[text] = self.models.clip.embed_texts([text])
        return self.text_cache[text]

    def fail(self, method: str, metric: str, reason: str) -> None:
        self.reasons[(method, metric)][reason] += 1

    # -- one asset --
    def asset(self, method: str, uid: str, pred_dir: Path, gt_dir: Optional[Path]) -> Dict[str, Optional[float]]:
        from diffusion4d.metrics import match_size, psnr_per_frame, silhouette_iou, ssim_per_frame, to_tensor, view_iou_gain
        from diffusion4d.eval.samples import generation_seconds, read_generation, read_recon_metrics, recon_seconds

        cfg, models = self.cfg, self.models
        row: Dict[str, Optional[float]] = {m: None for m in cfg.metrics if METRIC_INFO[m].per_asset}
        pred = read_clip(pred_dir)
        pred_rgb = frames_to_float(pred.frames)
        gt = self.gt_clip(gt_dir) if gt_dir is not None else None
        gt_rgb = frames_to_float(gt.frames) if gt is not None else None

        # pixel metrics: same view index, pred resized to the gt resolution if needed
        pixel = [m for m in PIXEL_METRICS if m in row]
        if pixel and gt is not None:
            if pred_rgb.shape[0] != gt_rgb.shape[0]:
                for m in pixel:
                    self.fail(method, m, f"frame count differs from the ground truth ({pred_rgb.shape[0]} vs {gt_rgb.shape[0]})")
            else:
                a, b = to_tensor(pred_rgb), to_tensor(gt_rgb)
                if a.shape[-2:] != b.shape[-2:]:
                    self.result.note(f"{method}: predictions resized from {a.shape[-1]}x{a.shape[-2]} to the ground-truth {b.shape[-1]}x{b.shape[-2]} for PSNR/SSIM/LPIPS")
                    a = match_size(a, b)
                if "psnr" in row:
                    row["psnr"] = float(psnr_per_frame(a, b).mean())
                if "ssim" in row:
                    row["ssim"] = float(ssim_per_frame(a, b).mean())
                if "iou" in row:
                    row["iou"] = float(silhouette_iou(a, b).mean())
                if "view_iou" in row:
                    row["view_iou"] = view_iou_gain(a, b) if a.shape[0] > 1 else None
                if "lpips" in row and models.lpips is not None:
                    from diffusion4d.metrics import lpips_per_frame

                    row["lpips"] = float(lpips_per_frame(models.lpips, a, b).mean())

        # colour: the sample's mean foreground colour, matched against every ground-truth asset per method
        if "colour" in cfg.metrics and gt is not None:
            from diffusion4d.eval.colour_match import foreground_mean_colour

            self.colours.setdefault(method, {})[uid] = foreground_mean_colour(pred_rgb)

        # CLIP scores
        clip_wanted = [m for m in CLIP_METRICS if m in row]
        if clip_wanted and models.clip is not None:
            self._clip(method, uid, row, pred, pred_rgb, pred_dir, gt, gt_rgb, gt_dir)

        # FVD features (collected; the distance is per method)
        if "fvd" in cfg.metrics and models.fvd is not None and gt is not None:
            from diffusion4d.eval.fvd_metric import preprocess

            pred_key, gt_key = f"pred:{method}:{uid}", f"gt:{gt_dir}"
            if gt_key not in self.fvd_gt_queued:
                self.fvd_gt_queued.add(gt_key)
                self.fvd_queue.append((gt_key, preprocess(gt_rgb, resolution=cfg.fvd_resolution, rule=cfg.fvd_frames)))
            self.fvd_queue.append((pred_key, preprocess(pred_rgb, resolution=cfg.fvd_resolution, rule=cfg.fvd_frames)))
            self.fvd_pairs.setdefault(method, []).append((pred_key, gt_key))
            if len(self.fvd_queue) >= FVD_BATCH:
                self.flush_fvd()

        if "time" in row:
            asset_dir = pred_dir.parent
            parts = [generation_seconds(read_generation(asset_dir)), recon_seconds(read_recon_metrics(asset_dir))]
            parts = [p for p in parts if p is not None]
            if parts:
                row["time"] = float(sum(parts))
            else:
                self.fail(method, "time", "no timings in generation.json / metrics.json")
        return row

    def flush_fvd(self) -> None:
        """Run the I3D on the queued clips (one batch)."""
        if not self.fvd_queue:
            return
        import torch

        keys = [k for k, _ in self.fvd_queue]
        feats = self.models.fvd(torch.stack([x for _, x in self.fvd_queue])).numpy()
        self.fvd_features.update(zip(keys, feats))
        self.fvd_queue.clear()

    def _clip(self, method, uid, row, pred, pred_rgb, pred_dir, gt, gt_rgb, gt_dir) -> None:
        from diffusion4d.eval.clip_scores import cosine, nearest_azimuth_indices
        from diffusion4d.eval.samples import caption_of, input_image_of

        cfg, clip = self.cfg, self.models.clip
        pred_emb = clip.embed_images(pred_rgb)  # [N, D]
        asset_dir = pred_dir.parent
        front_dir = asset_dir / "front"
        if (front_dir / "cameras.json").is_file():
            pred_front = clip.embed_images(frames_to_float(read_clip(front_dir).frames))
            used_front_clip = True
        else:
            pred_front = pred_emb[_front_index(pred.cameras)][None]
            used_front_clip = False
        caption = caption_of(gt_dir.parent if gt_dir is not None else None, asset_dir)

        if "clip_text" in row:
            if caption:
                row["clip_text"] = float(cosine(pred_emb, self.text_embedding(caption)).mean())
            else:
                self.fail(method, "clip_text", "no prompt (generation.json) or caption (meta.json)")

        if not ({"clip_f", "clip_o"} & set(row)):
            return
        if cfg.reference == "text":
            if not caption:
                for m in ("clip_f", "clip_o"):
                    self.fail(method, m, "no prompt or caption for the text reference")
                return
            ref = self.text_embedding(caption)
            row["clip_f"] = float(cosine(pred_front, ref).mean()) if "clip_f" in row else None
            row["clip_o"] = float(cosine(pred_emb, ref).mean()) if "clip_o" in row else None
            return
        if gt is None:
            return
        gt_key = str(gt_dir)
        if gt_key not in self.gt_embeds:
            self.gt_embeds[gt_key] = clip.embed_images(gt_rgb)
        gt_emb = self.gt_embeds[gt_key]
        if cfg.reference == "image":
            image_path = input_image_of(asset_dir)
            ref = clip.embed_images(_load_image(image_path)[None]) if image_path else gt_emb[_front_index(gt.cameras)][None]
            if "clip_f" in row:
                row["clip_f"] = float(cosine(pred_front, ref).mean())
            if "clip_o" in row:
                row["clip_o"] = float(cosine(pred_emb, ref).mean())
            return
        # reference == "gt": the ground-truth render of the same view
        if "clip_f" in row:
            gt_front_dir = gt_dir.parent / "front"
            if used_front_clip and (gt_front_dir / "cameras.json").is_file():
                gt_front = clip.embed_images(frames_to_float(read_clip(gt_front_dir).frames))
                if gt_front.shape[0] == pred_front.shape[0]:
                    row["clip_f"] = float(cosine(pred_front, gt_front).mean())
                else:
                    self.fail(method, "clip_f", "front clips differ in length")
            else:
                if used_front_clip:
                    pred_front = pred_emb[_front_index(pred.cameras)][None]
                row["clip_f"] = float(cosine(pred_front, gt_emb[_front_index(gt.cameras)][None]).mean())
        if "clip_o" in row:
            idx = nearest_azimuth_indices(_azimuths(pred.cameras), _azimuths(gt.cameras))
            if len(idx) != len(_azimuths(gt.cameras)):
                self.result.note(f"{method}: orbit length differs from the ground truth; CLIP-O pairs each view with the nearest-azimuth ground-truth view")
            row["clip_o"] = float(cosine(pred_emb, gt_emb[idx]).mean())


# --------------------------------------------------------------------------------------------
# the run


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Compute every requested metric for every method; write tables when ``cfg.output`` is set."""
    cfg.validate()
    found = _resolve_weights(cfg)
    device = _resolve_device(cfg.device)
    result = EvalResult(task=cfg.task, reference=cfg.reference, methods=list(cfg.preds), metrics=list(cfg.metrics))
    result.settings.update(
        {k: v for k, v in asdict(cfg).items() if k not in ("output", "formats")}
        | {"device": device, "background": "white (RGBA composited over 1.0)"}
    )
    models = _load_models(cfg, found, device, result)
    ev = _Evaluator(cfg, models, result)

    gt_clips = list_clip_dirs(cfg.gt, cfg.mode) if cfg.gt else {}
    if cfg.gt and not gt_clips:
        raise UserError(f"--gt {cfg.gt}: no <uid>/{cfg.mode}/cameras.json clips found")
    per_method_clips: Dict[str, Dict[str, Path]] = {}
    jobs: List[Tuple[str, str, Path, Optional[Path]]] = []
    for method, folder in cfg.preds.items():
        clips = list_clip_dirs(folder, cfg.mode)
        per_method_clips[method] = clips
        if not clips:
            result.note(f"{method}: no <uid>/{cfg.mode}/ clips in {folder}")
        if cfg.gt:
            common = sorted(set(clips) & set(gt_clips))
            extra, absent = sorted(set(clips) - set(gt_clips)), sorted(set(gt_clips) - set(clips))
            asset_metrics = [m for m in cfg.metrics if METRIC_INFO[m].per_asset]
            if absent and asset_metrics:
                result.note(f"{method}: {len(absent)} ground-truth asset(s) have no prediction: {', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
            if extra and asset_metrics and set(cfg.metrics) - {"motion"}:
                result.note(f"{method}: {len(extra)} prediction(s) without ground truth not scored per asset: {', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
            jobs += [(method, uid, clips[uid], gt_clips[uid]) for uid in common]
        else:
            jobs += [(method, uid, clips[uid], None) for uid in sorted(clips)]

    asset_metrics = [m for m in cfg.metrics if METRIC_INFO[m].per_asset]
    for method in cfg.preds:
        result.per_asset[method] = {}
    if asset_metrics or {"fvd", "colour"} & set(cfg.metrics):  # fvd and colour read per-asset features too
        for method, uid, pred_dir, gt_dir in progress(jobs, desc="extracting features", unit="asset"):
            row = ev.asset(method, uid, pred_dir, gt_dir)
            if asset_metrics:
                result.per_asset[method][uid] = {m: row.get(m) for m in asset_metrics}
        ev.flush_fvd()

    for method in cfg.preds:
        rows = result.per_asset[method]
        result.summary[method] = {}
        for metric in cfg.metrics:
            if METRIC_INFO[metric].per_asset:
                values = [r.get(metric) for r in rows.values()]
                result.summary[method][metric] = summarize(values)
                n_inf = sum(1 for v in values if v is not None and math.isinf(v))
                if n_inf:
                    result.note(f"{method}: {metric} is inf for {n_inf} asset(s) (frames identical to the ground truth), so its mean is inf; see the per-asset table")
            elif metric == "fvd":
                result.summary[method][metric] = _fvd(method, ev, result)
            elif metric == "motion":
                result.summary[method][metric] = _motion(method, per_method_clips[method], result)
            elif metric == "colour":
                result.summary[method][metric] = _colour(method, ev, gt_clips, result)
            if metric in models.missing:
                result.mark_na(method, metric, models.missing[metric])
            for reason, count in ev.reasons.get((method, metric), Counter()).items():
                result.mark_na(method, metric, reason)
                result.note(f"{method}: {metric} n/a for {count}/{len(rows)} asset(s): {reason}")
            if result.summary[method][metric] is None and metric not in result.na.get(method, {}):
                result.mark_na(method, metric, "no assets to score")
    if cfg.output:
        written = write_tables(result, Path(cfg.output), cfg.formats)
        log.info("wrote %s", ", ".join(str(p) for p in written))
    return result


def _fvd(method: str, ev: _Evaluator, result: EvalResult) -> Optional[Summary]:
    if ev.models.fvd is None:
        return None
    from diffusion4d.eval.fvd_metric import fvd_from_features

    pairs = ev.fvd_pairs.get(method, [])
    if len(pairs) < 2:
        reason = f"FVD needs at least 2 matched clips, got {len(pairs)}"
        result.mark_na(method, "fvd", reason)
        result.note(f"{method}: fvd n/a: {reason}")
        return None
    pred = np.stack([ev.fvd_features[p] for p, _ in pairs])
    gt = np.stack([ev.fvd_features[g] for _, g in pairs])
    if len(pairs) < pred.shape[1]:
        result.note(f"fvd: {len(pairs)} clips per set for {pred.shape[1]}-d features: the covariances are rank deficient (as with the paper's 20 assets); compare FVD only between runs on the same assets")
    return Summary(fvd_from_features(pred, gt), None, len(pairs))


def _colour(method: str, ev: _Evaluator, gt_clips: Dict[str, Path], result: EvalResult) -> Optional[Summary]:
    """Share of the method's samples whose mean foreground colour is nearest to their own asset's
    among every accepted ground-truth asset (:mod:`diffusion4d.eval.colour_match`); ground-truth assets of one
    object (the same curated ``object``, else the same caption: :func:`~diffusion4d.eval.samples.object_of`)
    count once, so renders of one object do not compete."""
    from diffusion4d.eval.colour_match import rank_colours
    from diffusion4d.eval.samples import curation_status, object_of

    # every asset of the curated set competes, with or without a prediction; renders curation rejected
    # or failed are not part of the set (a folder without meta.json counts as curated)
    curated = {uid: d for uid, d in gt_clips.items() if curation_status(d.parent) in (None, "accepted")}
    refs = {uid: ev.gt_colour(d) for uid, d in curated.items()}
    objects = {uid: object_of(d.parent) or uid for uid, d in curated.items()}
    matches = rank_colours(ev.colours.get(method, {}), refs, objects)
    result.colour_matches[method] = {"references": len({objects[uid] for uid, c in refs.items() if c is not None}),
                                     "per_sample": [asdict(m) for m in matches]}
    ranks = [m.rank for m in matches if m.rank is not None]
    if not ranks or sum(c is not None for c in refs.values()) < 2:
        reason = "needs samples with a foreground and at least 2 ground-truth assets"
        result.mark_na(method, "colour", reason)
        result.note(f"{method}: colour n/a: {reason}")
        return None
    return Summary(float(np.mean([r == 1 for r in ranks])), None, len(ranks))


def _motion(method: str, clips: Dict[str, Path], result: EvalResult) -> Optional[Summary]:
    from diffusion4d.eval.motion_control import evaluate_groups, find_groups, method_score

    groups = evaluate_groups(find_groups(clips), clips)
    result.motion_groups[method] = [g.to_json() for g in groups]
    mean, std, n, reason = method_score(groups)
    if mean is None:
        result.mark_na(method, "motion", reason)
        result.note(f"{method}: motion n/a: {reason}")
        return None
    return Summary(mean, std, n)


def run_metrics(
    preds: Union[Dict[str, Union[str, Path]], Sequence[Tuple[str, Union[str, Path]]]],
    gt: Optional[Union[str, Path]] = None,
    output: Optional[Union[str, Path]] = None,
    **options: Any,
) -> EvalResult:
    """Evaluate methods against ground truth and (optionally) write the tables.

    Args:
        preds: ``{method name: folder of <uid>/dynamic clips}`` (or a list of pairs).
        gt: folder of ground-truth ``<uid>/dynamic`` clips (needed for every metric except
            motion, time and text-referenced CLIP scores).
        output: folder for metrics.md / summary.csv / per_asset.csv / motion.csv / metrics.tex /
            metrics.json (None: nothing written).
        **options: any other :class:`EvalConfig` field (``metrics``, ``reference``,
            ``weights_dir``, ``device``, ``strict``, ``clip_model``, ``formats``, ...).

    Returns:
        The :class:`EvalResult`. Raises :class:`UserError` on bad input, and with
        ``strict=True`` when a network's weights are missing.
    """
    preds = dict(preds)
    unknown = set(options) - set(EvalConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}")
    cfg = EvalConfig(
        preds={k: str(v) for k, v in preds.items()},
        gt=str(gt) if gt is not None else None,
        output=str(output) if output is not None else None,
        **options,
    )
    return evaluate(cfg)


__all__ = ["EvalConfig", "EvalResult", "evaluate", "run_metrics"]
