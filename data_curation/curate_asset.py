"""Curate one asset: render its clips, apply the rules, write clips + ``meta.json``.

:func:`curate_asset` runs inside a worker process (any executor). It never raises for a bad
asset: it returns a result dict (the manifest record plus ``frames_rendered``) with status
``accepted``, ``rejected`` (a rule decided; the reason names the rule) or ``failed`` (the
asset could not be loaded or rendered; the reason is the error). ``meta.json`` is written
before returning, so the caller records the manifest line only after it exists.

Besides the status, every record lists the training ``stages`` the asset can serve
(``STAGE_PRIOR`` = ``"prior3d"``: its static orbits, for the 3D-aware prior of training stage 1;
``STAGE_4D`` = ``"4d"``: its dynamic + static orbits, for the 4D fine-tuning of stage 2). An
asset the 4D rules reject for having no or too little motion is exactly the static 3D data
stage 1 needs, so its static orbits are rendered and kept whenever they are in view
(``rules.keep_static_for_prior``).
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from diffusion4d.cameras import CameraTrajectory, orbit_trajectory

from .curate_config import CurateConfig
from .rules import (RuleResult, empty_render_rule, motion_magnitude, motion_range_rule, no_animation_rule, out_of_frame_rule,
                    ssim_rule)

logger = logging.getLogger(__name__)

STAGE_PRIOR = "prior3d"  # static orbits usable by training stage 1 (the 3D-aware prior)
STAGE_4D = "4d"  # dynamic + static orbits usable by training stage 2 (4D fine-tuning)


@dataclass
class AssetTask:
    """One asset to curate."""

    uid: str
    path: Optional[str]  # local file (None when the source could not provide one)
    source: str  # local | objaverse | procedural
    caption: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)  # licence, source metadata, a source-side error
    error: str = ""  # set when the source already failed (e.g. missing from the Objaverse store)


def asset_rng(seed: int, uid: str) -> np.random.Generator:
    """Per-asset generator: depends only on (seed, uid), so sharding and resuming never change it."""
    digest = hashlib.sha256(f"{seed}:{uid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def orbit_plan(cfg: CurateConfig, uid: str) -> List[Dict[str, Any]]:
    """Start azimuth and elevation of every orbit of ``uid`` (orbit 0 at the front unless azimuth_aug)."""
    r = cfg.render
    rng = asset_rng(cfg.seed, uid)
    plan = []
    for k in range(r.orbits_per_asset):
        az = float(rng.uniform(0.0, 360.0)) if (k > 0 or r.azimuth_aug) else 0.0
        el = float(rng.uniform(*r.elevation_range)) if r.elevation_aug else float(r.elevation)
        suffix = "" if k == 0 else f"_{k}"
        plan.append({"dynamic": f"dynamic{suffix}", "static": f"static{suffix}", "start_azimuth": az, "elevation": el})
    return plan


def _make_renderer(task: AssetTask, cfg: CurateConfig):
    r = cfg.render
    if r.renderer == "blender":
        from .render.blender import BlenderAssetRenderer

        return BlenderAssetRenderer(task.path, blender=r.blender, engine=r.blender_engine, samples=r.blender_samples,
                                    animation=r.animation, normalize=r.normalize, max_extent=r.max_extent, timeout=cfg.timeout)
    from .render import AssetRenderer

    return AssetRenderer(task.path, animation=r.animation, normalize=r.normalize, msaa=r.msaa, max_extent=r.max_extent)


def curate_asset(task: AssetTask, cfg: CurateConfig) -> Dict[str, Any]:
    """Curate ``task`` into ``cfg.output/<uid>/``; returns the manifest record dict (+ ``frames_rendered``)."""
    from diffusion4d.io import write_clip, write_meta

    from .gltf import AssetError

    start = time.perf_counter()
    r, rules = cfg.render, cfg.rules
    asset_dir = Path(cfg.output) / task.uid
    meta: Dict[str, Any] = {"uid": task.uid, "source": task.source, "caption": task.caption, "status": "failed", "reason": "",
                            "motion_magnitude": None, "ssim_quarter": None, "ssim_half": None, "renderer": r.renderer,
                            "frames": r.frames, "resolution": r.resolution, "duration_seconds": 0.0, "orbits": [],
                            "modes": [], "stages": [], "asset_path": task.path, **task.extra}
    frames_rendered = 0

    def finish(status: str, reason: str) -> Dict[str, Any]:
        meta["status"], meta["reason"] = status, reason
        meta["seconds"] = round(time.perf_counter() - start, 3)
        write_meta(asset_dir, meta)
        extra = {k: meta[k] for k in ("ssim_quarter", "ssim_half", "orbits", "modes", "duration_seconds", "stages", "object")
                 if meta.get(k) is not None}
        extra.update(task.extra)
        return {"uid": task.uid, "source": task.source, "status": status, "reason": reason,
                "motion_magnitude": meta["motion_magnitude"], "caption": task.caption, "renderer": r.renderer,
                "seconds": meta["seconds"], "extra": extra, "frames_rendered": frames_rendered}

    if task.error:
        return finish("failed", task.error)
    renderer = None
    try:
        renderer = _make_renderer(task, cfg)
        obj = getattr(getattr(renderer, "scene", None), "asset_extras", {}).get("object")
        if isinstance(obj, str) and obj.strip() and "object" not in meta:
            meta["object"] = obj  # the object this asset shows (renders of one object share it; docs/curation.md)
        duration = renderer.duration if r.duration_seconds <= 0 else min(r.duration_seconds, renderer.duration)
        meta["duration_seconds"] = duration
        anim = no_animation_rule(renderer.has_animation, renderer.duration)
        static_only = rules.require_animation and not anim.passed
        if static_only and not rules.keep_static_for_prior:
            return finish("rejected", anim.reason)
        time_scale = duration / renderer.duration if renderer.duration > 0 else 1.0

        def traj(mode: str, az: float, el: float) -> CameraTrajectory:
            cams = orbit_trajectory(mode, r.frames, start_azimuth=az, elevation=el, radius=r.radius, fov_deg=r.fov,
                                    width=r.resolution, height=r.resolution, duration_seconds=duration)
            for f in cams.frames:  # duration_seconds < animation: play only the first part
                f.time *= time_scale
            return cams

        plan = orbit_plan(cfg, task.uid)
        clips: Dict[str, tuple] = {}
        for orbit in plan:
            for kind in ("static",) if static_only else ("dynamic", "static"):
                cams = traj(kind, orbit["start_azimuth"], orbit["elevation"])
                clips[orbit[kind]] = (renderer.render(cams), cams)
                frames_rendered += len(cams)
        if static_only:  # no animation: no 4D data, but its static orbits can train the 3D prior
            renderer.close()
            renderer = None
            return _finish_static_only(task, cfg, plan, clips, anim, meta, finish)
        az0, el0 = plan[0]["start_azimuth"], plan[0]["elevation"]
        if "front" in r.modes or rules.ssim:
            cams = traj("front", az0, el0)
            clips["front"] = (renderer.render(cams), cams)
            frames_rendered += len(cams)
        if "four_view" in r.modes:
            cams = traj("four_view", az0, el0)
            clips["four_view"] = (renderer.render(cams), cams)
            frames_rendered += len(cams)
    except AssetError as err:
        return finish("failed", str(err))
    except Exception as err:  # a renderer bug or an unexpected file defect: record it, keep going
        logger.debug("asset %s failed:\n%s", task.uid, traceback.format_exc())
        return finish("failed", f"error: {type(err).__name__}: {str(err)[:200]}")
    finally:
        if renderer is not None:
            renderer.close()

    # motion magnitude per orbit
    for orbit in plan:
        orbit["motion_magnitude"] = motion_magnitude(clips[orbit["dynamic"]][0], clips[orbit["static"]][0])
    meta["orbits"] = plan
    meta["motion_magnitude"] = plan[0]["motion_magnitude"]

    decision: Optional[RuleResult] = None
    checks: List[RuleResult] = [empty_render_rule(clips[plan[0]["dynamic"]][0], rules.min_coverage)]
    if rules.out_of_frame:
        moving = {name: c[0] for name, c in clips.items() if name.startswith("dynamic") or name in ("front", "four_view")}
        checks.append(out_of_frame_rule(moving, rules.border_px, rules.border_alpha))
    if rules.ssim:
        res, meta["ssim_quarter"], meta["ssim_half"] = ssim_rule(clips["front"][0], rules.s_high, rules.s_low)
        checks.append(res)
    checks.append(motion_range_rule(meta["motion_magnitude"], rules.min_motion, rules.max_motion))
    meta["rules"] = {c.rule: {"passed": c.passed, "reason": c.reason} for c in checks}
    decision = next((c for c in checks if not c.passed), None)
    status = "accepted" if decision is None else "rejected"
    reason = decision.reason if decision else "accepted: " + "; ".join(c.reason for c in checks)

    prior_ok = _static_orbits_usable(plan, clips, cfg)
    meta["stages"] = ([STAGE_PRIOR] if prior_ok else []) + ([STAGE_4D] if status == "accepted" else [])
    write = status == "accepted" or (rules.write_rejected and not (decision and decision.rule == "empty_render"))
    wanted = _clip_names(clips, r.modes) if write else []
    if prior_ok:  # stage 1 needs the static orbits even when rejected clips are not kept
        wanted += [o["static"] for o in plan if o["static"] not in wanted]
    for name in wanted:
        frames, cams = clips[name]
        write_clip(asset_dir / name, frames, cams)
    meta["modes"] = wanted
    return finish(status, reason)


def _clip_names(clips: Dict[str, tuple], modes: List[str]) -> List[str]:
    """The rendered clips whose mode (``dynamic_1`` -> ``dynamic``) is in ``modes``."""
    wanted = []
    for name in clips:
        base = name.split("_")[0] if name.startswith(("dynamic", "static")) else name
        if base in modes:
            wanted.append(name)
    return wanted


def _static_orbits_usable(plan: List[Dict[str, Any]], clips: Dict[str, tuple], cfg: CurateConfig) -> bool:
    """Stage-1 (3D prior) usability: the static orbits show the object and stay inside the frame."""
    rules = cfg.rules
    if not rules.keep_static_for_prior:
        return False
    if not empty_render_rule(clips[plan[0]["static"]][0], rules.min_coverage).passed:
        return False
    if rules.out_of_frame:
        statics = {o["static"]: clips[o["static"]][0] for o in plan}
        return out_of_frame_rule(statics, rules.border_px, rules.border_alpha).passed
    return True


def _finish_static_only(task: AssetTask, cfg: CurateConfig, plan, clips, anim: RuleResult, meta, finish) -> Dict[str, Any]:
    """An asset without animation: rejected for 4D, its static orbits kept for the 3D prior."""
    from diffusion4d.io import write_clip

    for orbit in plan:
        orbit["motion_magnitude"] = 0.0
    meta["orbits"] = plan
    meta["motion_magnitude"] = None  # no animation: Eq. 1 is not defined for the 4D data
    prior_ok = _static_orbits_usable(plan, clips, cfg)
    meta["stages"] = [STAGE_PRIOR] if prior_ok else []
    wanted = [o["static"] for o in plan] if prior_ok else []
    for name in wanted:
        frames, cams = clips[name]
        write_clip(Path(cfg.output) / task.uid / name, frames, cams)
    meta["modes"] = wanted
    return finish("rejected", anim.reason)
