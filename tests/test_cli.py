import subprocess
import sys
import types

import pytest

from diffusion4d import app as cli


def test_help_lists_only_installed_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in cli._available_commands():
        assert name in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2


def test_user_error_is_one_line_exit_2(monkeypatch, capsys):
    from diffusion4d.errors import UserError

    module = types.SimpleNamespace(
        HELP="boom", add_arguments=lambda p: None, run=lambda a: (_ for _ in ()).throw(UserError("bad input x"))
    )
    monkeypatch.setitem(sys.modules, "fake_cmd_module", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", {"boom": "fake_cmd_module"})
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object())
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["diffusion4d boom: error: bad input x"]


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "diffusion4d", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "diffusion4d" in proc.stdout


def test_a_command_that_cannot_load_says_why_in_one_line(monkeypatch, capsys):
    import diffusion4d.app as cli

    monkeypatch.setitem(cli.COMMAND_MODULES, "broken", "diffusion4d.no_such_module_here")
    assert cli.main(["broken", "--input", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load" in err[0] and "no_such_module_here" in err[0]
