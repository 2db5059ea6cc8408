"""Fixtures of the benchmark tests: LEARN's tiny cyclic data (tests/learn/learn_synthetic.py) and a throwaway git
checkout as the current folder (the clean-tree checks of the reports)."""

import subprocess

import pytest
from tests.learn.learn_synthetic import cyclic_content, cyclic_dataset

from recllm.data.split import leave_one_out


@pytest.fixture(scope="session")
def dataset():
    return cyclic_dataset()


@pytest.fixture(scope="session")
def content():
    return cyclic_content()


@pytest.fixture(scope="session")
def loo(dataset):
    return leave_one_out(dataset)


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A fresh git checkout with one committed file (a.txt), as the current folder."""
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt", cwd=tmp_path)
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "first", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path
