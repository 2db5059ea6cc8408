"""Fixtures of the benchmark tests: LEARN's tiny cyclic data (tests/learn/learn_synthetic.py)."""

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
