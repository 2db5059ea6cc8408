"""Fixtures of the benchmark tests: LEARN's tiny cyclic data (tests/learn/learn_synthetic.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))
from learn_synthetic import cyclic_content, cyclic_dataset  # noqa: E402

from recllm.data.split import leave_one_out  # noqa: E402


@pytest.fixture(scope="session")
def dataset():
    return cyclic_dataset()


@pytest.fixture(scope="session")
def content():
    return cyclic_content()


@pytest.fixture(scope="session")
def loo(dataset):
    return leave_one_out(dataset)
