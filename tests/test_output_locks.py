"""One writer per output folder for training and the demo; demo config errors are one line."""

from pathlib import Path

import pytest
from filelock import FileLock

from diffusion4d.app import main
from diffusion4d.train.finetune import main as train_main
from diffusion4d.train.trainer import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]


def test_a_second_training_run_on_the_same_output_refuses(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with FileLock(str(out / LOCK_FILE)):  # the first run holds it
        status = train_main(["--config", str(REPO / "configs/train/tiny.yaml"), f"output_dir={out}", f"data.root={tmp_path}",
                             "report_to=none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "another training run is writing to" in err[0]


def test_training_output_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert train_main(["--config", str(REPO / "configs/train/tiny.yaml"), f"output_dir={tmp_path / 'f'}"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_trainer_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        train_main(["--nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1


def test_demo_refuses_a_missing_config_and_bad_overrides(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "d"), "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "preset file not found" in capsys.readouterr().err
    assert main(["demo", "--output", str(tmp_path / "d"), "no_such_key=1"]) == 2
    assert main(["demo", "--output", str(tmp_path / "d"), "train_steps=abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("diffusion4d demo: error:") for line in err)
    assert not (tmp_path / "d" / "demo_state.json").exists()


def test_a_second_demo_on_the_same_output_refuses(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    with FileLock(str(out / ".demo.lock")):
        assert main(["demo", "--output", str(out), "--quick"]) == 2
    assert "another demo is writing to" in capsys.readouterr().err
