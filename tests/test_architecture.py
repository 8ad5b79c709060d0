"""The layering of docs/architecture.md, enforced with import-linter (contracts in .importlinter):
the core imports no stage and no app module, the stages import no app module and never each other.

The contracts are checked on the installed layout (the repository's stage and app folders as
subpackages of ``diffusion4d``, as setup.py maps them), assembled here by copying the sources.
"""

import configparser
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUBPACKAGE_FOLDERS = {"app": "app", "data_curation": "data_curation", "train": "train", "recon": "recon", "eval": "eval"}
SCRIPT_FOLDERS = ("train", "eval")  # folders holding scripts run by path (train/finetune.py, eval/run_metrics.py)


def _installed_layout(root: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "csrc", "*.html", "*.js")
    shutil.copytree(REPO / "diffusion4d", root / "diffusion4d", ignore=ignore)
    for name, folder in SUBPACKAGE_FOLDERS.items():
        shutil.copytree(REPO / folder, root / "diffusion4d" / name, ignore=ignore)
    return root


def test_import_contracts_hold(tmp_path):
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is not installed (it is in the dev extra: pip install -e '.[dev]')")
    root = _installed_layout(tmp_path / "layout")
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run([exe, "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_core_module_is_under_contract():
    """A module added to the diffusion4d/ folder is part of the core: it must be listed in the core contract."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".importlinter")
    listed = set(cfg["importlinter:contract:core-imports-no-stage-or-app"]["source_modules"].split())
    core = {f"diffusion4d.{m.name}" for m in pkgutil.iter_modules([str(REPO / "diffusion4d")]) if m.name != "__main__"}
    assert core - listed == set(), f"core modules missing from the contract: {sorted(core - listed)}"
    assert listed - core == set(), f"contract lists modules that do not exist: {sorted(listed - core)}"


def test_the_distribution_claims_one_import_name():
    """setup.py installs every package under ``diffusion4d`` (no generic top-level ``train``/``eval``...)."""
    import diffusion4d.eval
    import diffusion4d.train

    assert Path(diffusion4d.train.__file__).parent == REPO / "train"
    assert Path(diffusion4d.eval.__file__).parent == REPO / "eval"
    proc = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print([n for n in ('train','eval','recon','data_curation','app') if u.find_spec(n)])"],
        cwd="/", capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"top-level names importable outside the repository: {proc.stdout}"


@pytest.mark.parametrize("folder", SCRIPT_FOLDERS)
def test_script_folders_shadow_no_installed_module(folder):
    """Running ``python eval/run_metrics.py`` puts ``eval/`` first on sys.path: none of its modules
    may share a name with the standard library or an installed top-level module."""
    here = {m.name for m in pkgutil.iter_modules([str(REPO / folder)])}
    others = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    repo = str(REPO)
    for m in pkgutil.iter_modules([p for p in sys.path if p and not p.startswith(repo)]):
        others.add(m.name)
    assert here & others == set(), f"{folder}/ shadows installed modules: {sorted(here & others)}"
