"""Recommender.recommend: k must be a whole number >= 1 (k=-3 used to return n-3 items)."""

import numpy as np
import pytest

from recllm.models.base import Recommender, check_k


class _Fixed(Recommender):
    n_items_ = 5

    def fit(self, split):
        return self

    def score(self, users, histories):
        return np.tile(np.arange(5, dtype=np.float32), (len(users), 1))


@pytest.mark.parametrize("k", [0, -3, -5, 1.0, "3", True, None])
def test_bad_k_is_refused(k):
    with pytest.raises(ValueError, match="k must be a whole number of at least 1"):
        _Fixed().recommend(np.array([0]), [np.array([], dtype=np.int64)], k=k)


def test_good_k_and_a_k_beyond_the_catalogue():
    idx, _ = _Fixed().recommend(np.array([0]), [np.array([4])], k=np.int64(2))
    assert idx.tolist() == [[3, 2]]
    idx, _ = _Fixed().recommend(np.array([0]), [np.array([], dtype=np.int64)], k=50)
    assert idx.shape == (1, 5)
    assert check_k(np.int32(3)) == 3
