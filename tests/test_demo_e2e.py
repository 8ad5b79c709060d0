"""The README's main command, end to end: ``diffusion4d demo --quick`` on a 2-core CPU."""

import json
import subprocess
import sys

import pytest

from diffusion4d.app.browser_check import find_chromium
from diffusion4d.app.demo import load_demo_config
from diffusion4d.recon.recon_config import load_recon_config


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_reruns_skip(tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "diffusion4d", "demo", "--quick", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "demo_state.json").read_text())["stages"]
    assert list(state) == ["assets", "curate", "autoencoder", "train_prior", "train", "generate", "reconstruct", "evaluate", "report"]
    assert all(s["status"] == "done" for s in state.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["curation"]["counts"]["accepted"] >= 2
    assert metrics["training"]["loss_last_tenth"] < metrics["training"]["loss_first_tenth"]
    (group,) = metrics["motion_control"]["groups"]  # quick: one swept caption
    assert len(group["requested"]) == 3 and group["requested"][0] == 0.0 and len(group["identity_iou"]) == 3
    assert set(metrics["targets"]) == {"iou", "colour", "spearman", "identity_iou", "recon_psnr", "peak_memory_gb", "wall_minutes"}
    # the quick preset's 3-minute budget, judged on this process's wall time (every stage ran in it), which
    # covers at least the stages' own seconds
    wall = metrics["targets"]["wall_minutes"]
    assert wall["target"] == 3 and wall["met"] == (wall["value"] <= 3)
    assert wall["value"] * 60 >= sum(s["seconds"] for name, s in state.items() if name != "report") - 1
    assert all(t["value"] is not None for t in metrics["targets"].values())  # every target measured
    peaks = [s["peak_rss_mb"] for s in state.values()]
    assert peaks == sorted(peaks) and 100 < peaks[-1] < 64 * 1024  # a process's peak only grows
    assert metrics["targets"]["peak_memory_gb"]["met"] == (metrics["peak_memory_gb"] < 4.0)
    # the model works on the autoencoder's latents and generates 64 px frames (no upsampling)
    assert (out / "autoencoder" / "config.json").is_file() and state["autoencoder"]["latent"] == [4, 16]
    # and the report states how far its round trip moves an object's colour (the ceiling of the colour check)
    ae = metrics["autoencoder"]
    assert 0.0 <= ae["colour_error_train"] <= ae["colour_error_train_max"] and ae["colour_error_worst"]
    from diffusion4d.io import read_clip

    sample = next((out / "generated" / "prompts").glob("*/dynamic"))
    assert read_clip(sample).frames.shape[1:3] == (64, 64)
    assert (out / "train" / "checkpoint-120" / "vae" / "config.json").is_file()
    assert len(metrics["probe"]) == 1 and (out / "generated" / "probe" / "probe0" / "dynamic").is_dir()
    # both stages of the recipe ran: stage 2 started from the stage-1 prior and carries it, generation used it
    assert state["train"]["prior"] == state["train_prior"]["checkpoint"] is not None
    assert (out / "train" / "checkpoint-120" / "prior_unet" / "config.json").is_file()
    unet = json.loads((out / "train" / "checkpoint-120" / "unet" / "config.json").read_text())
    # the full demo's stage 2; the gate's reference comes from the data: the red cube's m 0.0398, rounded up
    assert unet["frame_time_motion_anchor"] == "first" and unet["frame_time_motion_reference"] == 0.04
    gen = json.loads(next((out / "generated" / "prompts").glob("*/generation.json")).read_text())
    assert gen["prior"] == "separate"
    # with the full demo's guidance: the prior's branch only (w1 = 0 skips the unconditional one)
    assert [gen["guidance_scale"], gen["prior_guidance_scale"]] == load_demo_config(None, False, []).guidance == [0.0, 0.5]
    assert set(metrics["reconstruction"]) == {"generated", "ground_truth"}
    # both fits start inside the visual hull of their views and keep that set (the demo preset)
    fitted = sorted((out / "recon").glob("*/*/recon_config.yaml"))
    assert len(fitted) == 2
    for path in fitted:
        recon_cfg = load_recon_config(path)
        assert recon_cfg.init.mode == "visual_hull" and not recon_cfg.coarse.densify.enabled
    html = (out / "report.html").read_text()
    assert html.count("<video") >= 8 and "<svg" in html
    assert html.count('<figure class="sheet">') == 2  # every frame: the caption samples and the one sweep
    assert "mean colour by" in html  # the autoencoder's colour error (the apostrophe is HTML-escaped)
    assert "The latents are whitened" in html and len(state["autoencoder"]["latent_eigenvalues"]) == 4
    if find_chromium() is not None:
        assert state["report"]["browser"]["ok"] is True
        assert (out / "report_screenshot.png").stat().st_size > 10_000
    # a rerun skips every completed stage
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert again.stderr.count("already done") == 9
