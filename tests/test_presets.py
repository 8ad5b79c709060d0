"""Presets by name or path, the same rule for every command; shipped as package data."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from diffusion4d.config import load_config
from diffusion4d.errors import UserError
from diffusion4d.presets import STAGES, list_presets, resolve_preset

REPO = Path(__file__).resolve().parents[1]


def test_names_and_paths_resolve_to_the_shipped_files(tmp_path, monkeypatch):
    assert resolve_preset("train", "t2v").read_text() == (REPO / "configs/train/t2v.yaml").read_text()
    assert resolve_preset("recon", "paper.yaml").name == "paper.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("seed: 3\n")
    assert resolve_preset("demo", str(own)) == own
    monkeypatch.chdir(tmp_path)  # away from the checkout, a README path still finds the shipped preset
    assert resolve_preset("train", "configs/train/tiny.yaml").name == "tiny.yaml"
    with pytest.raises(UserError, match="unknown train preset 'nope'.*t2v"):
        resolve_preset("train", "nope")
    with pytest.raises(UserError, match="preset file not found"):
        resolve_preset("train", str(tmp_path / "missing.yaml"))


def test_every_shipped_preset_loads_into_its_config():
    from diffusion4d.data_curation.curate_config import CurateConfig
    from diffusion4d.app.demo import DemoConfig
    from diffusion4d.app.generate import GenerateConfig
    from diffusion4d.train.train_config import TrainConfig

    for stage, cls in (("train", TrainConfig), ("curation", CurateConfig), ("demo", DemoConfig), ("generate", GenerateConfig)):
        names = list_presets(stage)
        assert names
        for name in names:
            load_config(cls, resolve_preset(stage, name))
    assert set(list_presets("train")) >= {"tiny", "tiny_prior3d", "prior3d", "t2v", "i2v", "static3d"}


@pytest.mark.slow
def test_the_wheel_ships_the_presets_and_runs_from_a_fresh_environment(tmp_path):
    """pip wheel -> a fresh venv (dependencies from this one, not the source tree) -> presets + a command."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("diffusion4d-*.whl")
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    Path(site, "zz_deps.pth").write_text(deps + "\n")  # torch & co. from this environment; not its .pth hooks
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, str(wheel)], check=True,
                   capture_output=True)
    code = (
        "import diffusion4d, pathlib; from diffusion4d.presets import presets_root, list_presets, resolve_preset, STAGES\n"
        f"assert 'site-packages' in diffusion4d.__file__ and {str(REPO)!r} not in diffusion4d.__file__, diffusion4d.__file__\n"
        "root = presets_root(); assert 'site-packages' in str(root), root\n"
        "for stage in ('train', 'curation', 'demo', 'recon', 'generate'):\n"
        "    names = list_presets(stage); assert names, stage\n"
        "    for n in names: assert resolve_preset(stage, n).is_file()\n"
        "from diffusion4d.config import load_config\n"
        "from diffusion4d.train.train_config import TrainConfig\n"
        "from diffusion4d.data_curation.curate_config import CurateConfig\n"
        "from diffusion4d.app.demo_config import DemoConfig\n"
        "from diffusion4d.app.generate_config import GenerateConfig\n"
        "from diffusion4d.recon.recon_config import load_recon_config\n"
        "for stage, cls in (('train', TrainConfig), ('curation', CurateConfig), ('demo', DemoConfig), ('generate', GenerateConfig)):\n"
        "    for n in list_presets(stage): load_config(cls, resolve_preset(stage, n))\n"
        "for n in list_presets('recon'): load_recon_config(n)\n"
        "import importlib.util as u\n"
        "import diffusion4d.train, diffusion4d.recon, diffusion4d.eval, diffusion4d.data_curation, diffusion4d.app\n"
        "assert all('site-packages' in m.__file__ for m in (diffusion4d.train, diffusion4d.recon, diffusion4d.eval, diffusion4d.data_curation, diffusion4d.app))\n"
        "assert [n for n in ('train', 'eval', 'recon', 'data_curation', 'app') if u.find_spec(n)] == []\n"
        "print('ok')\n"
    )
    run = lambda args: subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300,  # noqa: E731
                                      env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    out = run([str(py), "-c", code])
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    out = run([str(py), "-m", "diffusion4d", "--help"])
    assert out.returncode == 0 and all(c in out.stdout for c in ("generate", "demo", "train", "evaluate")), out.stderr[-2000:]
    out = run([str(py), "-m", "diffusion4d", "train", "--help"])
    assert out.returncode == 0 and "--resume" in out.stdout, out.stderr[-2000:]
    out = run([str(py), "-m", "diffusion4d", "assets", "--output", str(tmp_path / "assets"), "--count", "2"])
    assert out.returncode == 0 and len(list((tmp_path / "assets").glob("*.glb"))) == 2, out.stderr[-2000:]
