"""Tiny synthetic data for LEARN: users walk a cyclic catalogue; item content encodes the position on the cycle."""

import pytest
from learn_synthetic import TINY, content, dataset, loo  # noqa: F401 (session fixtures)


@pytest.fixture(scope="session")
def fitted(loo, content):
    from recllm.learn import LEARN

    return LEARN(content_embeddings=content, **TINY).fit(loo)
