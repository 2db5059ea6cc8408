"""Tiny synthetic data for LEARN: users walk a cyclic catalogue; item content encodes the position on the cycle."""

import pytest
from learn_synthetic import TINY, cyclic_content, cyclic_dataset

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


@pytest.fixture(scope="session")
def fitted(loo, content):
    from recllm.learn import LEARN

    return LEARN(content_embeddings=content, **TINY).fit(loo)
