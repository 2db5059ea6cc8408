"""Helpers for evaluation tests: a recommender that returns a fixed score matrix."""

import numpy as np
import pytest

from recllm.models.base import Recommender


class FixedScores(Recommender):
    """Scores row ``users[i]`` of a fixed (n_users, n_items) matrix; records how it was called."""

    def __init__(self, table):
        self.table = table

    def fit(self, split=None):
        self.table_ = np.asarray(self.table, dtype=np.float64)
        self.n_items_ = self.table_.shape[1]
        self.calls_ = []
        return self

    def score(self, users, histories):
        self.calls_.append(len(users))
        return self.table_[np.asarray(users)]


@pytest.fixture
def fixed_scores():
    return lambda table: FixedScores(table).fit()
