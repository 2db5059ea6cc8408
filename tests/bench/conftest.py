"""Fixtures of the benchmark tests: LEARN's tiny cyclic data (tests/learn/learn_synthetic.py) and a throwaway git
checkout as the current folder (the clean-tree checks of the reports)."""

import subprocess

import pytest
from tests.learn.learn_synthetic import content, dataset, loo  # noqa: F401 (session fixtures)


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fresh git checkout with one committed file (a.txt), as the current folder and as the checkout of the recllm
    code running (what a report's header names)."""
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt", cwd=tmp_path)
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "first", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("recllm.bench.reporting.code_checkout", lambda package=None: tmp_path)
    return tmp_path

