"""How `recllm` ends: 2 for bad input, 1 (one line + --debug hint) for an internal failure, 130 on Ctrl-C, quietly
on a closed pipe; warnings are one line; --debug shows the traceback."""

import os
import sys
import warnings

import pytest

import recllm.cli as cli
from recllm.errors import UserInputError


def _handler(monkeypatch, effect):
    """Make `recllm data list` run ``effect`` (the parser picks the handler up when it is built)."""
    monkeypatch.setattr(cli, "_data_list", lambda args: effect())


def _raise(exc):
    def effect():
        raise exc
    return effect


def test_internal_failure_is_one_line_with_the_debug_hint(monkeypatch, capsys):
    _handler(monkeypatch, _raise(RuntimeError("boom\nat step 3")))
    assert cli.main(["data", "list"]) == 1
    out, err = capsys.readouterr()
    assert err == ("recllm data list: error: internal error: RuntimeError: boom at step 3; rerun with --debug for "
                   "the traceback and report it\n")


def test_debug_shows_the_traceback_anywhere_on_the_line(monkeypatch):
    _handler(monkeypatch, _raise(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["data", "list", "--debug"])
    _handler(monkeypatch, _raise(UserInputError("bad", "--x", "fix it")))
    with pytest.raises(UserInputError):
        cli.main(["--debug", "data", "list"])


@pytest.mark.parametrize("exc, line", [
    (UserInputError("bad value", "--x", "fix it"), "recllm data list: error: bad value (--x); fix it"),
    (FileNotFoundError(2, "No such file or directory", "in.csv"),
     "recllm data list: error: no such file or directory (in.csv); check the path and its permissions"),
    (PermissionError(13, "Permission denied", "runs/x"),
     "recllm data list: error: permission denied (runs/x); check the path and its permissions"),
])
def test_user_mistakes_exit_2(monkeypatch, capsys, exc, line):
    _handler(monkeypatch, _raise(exc))
    assert cli.main(["data", "list"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    _handler(monkeypatch, _raise(KeyboardInterrupt()))
    assert cli.main(["data", "list"]) == 130
    out, err = capsys.readouterr()
    assert err == "recllm data list: interrupted\n" and "Traceback" not in out


def test_closed_pipe_ends_quietly(monkeypatch, capfd):
    """`recllm data list | head -1`: the reader is gone; no message, no traceback, exit 141 (128 + SIGPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        code = cli.main(["data", "list"])
    finally:
        monkeypatch.undo()
        try:
            stream.close()
        except BrokenPipeError:
            pass
    assert code == 141
    assert capfd.readouterr().err == ""


def test_warnings_are_one_line_while_a_command_runs(monkeypatch):
    seen = []
    _handler(monkeypatch, lambda: seen.append(warnings.formatwarning(UserWarning("a different copy\nparsing it"),
                                                                     UserWarning, "x.py", 3, "code line")))
    before = warnings.formatwarning
    assert cli.main(["data", "list"]) == 0
    assert seen == ["recllm data list: warning: a different copy parsing it\n"]
    assert warnings.formatwarning is before


def test_help_exits_0(capsys):
    assert cli.main(["learn", "train", "--help"]) == 0
    assert "--out" in capsys.readouterr().out


def test_python_dash_m_recllm_is_the_recllm_command():
    """`python -m recllm` (where the environment's scripts folder is not on PATH) runs the same command line,
    with its exit codes."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    ok = subprocess.run([sys.executable, "-m", "recllm", "--help"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("usage: recllm ")
    bad = subprocess.run([sys.executable, "-m", "recllm", "cache", "list", "--bogus"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("recllm: error: unrecognized arguments: --bogus")
