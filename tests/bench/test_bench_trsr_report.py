"""trsr.md's paired comparisons use every seed a method ran, not only the first."""

import numpy as np

from recllm.bench.trsr.report import _paired


def test_paired_difference_averages_each_users_figure_over_seeds():
    users = 40
    a0, a1 = np.zeros(users), np.ones(users)  # seed 0 misses every user, seed 1 hits every user
    b = np.full(users, 0.25)
    rows = [{"method": "a", "seed": 0, "per_user": {"recall@10": a0.tolist()}},
            {"method": "a", "seed": 1, "per_user": {"recall@10": a1.tolist()}},
            {"method": "b", "seed": 0, "per_user": {"recall@10": b.tolist()}}]
    text = _paired(rows, "a", "b", "recall@10")
    assert "per-user mean over 2 vs 1 seed" in text and "+0.250" in text and "better" in text
    assert "seed" not in _paired(rows[1:], "a", "b", "recall@10")  # one seed each: nothing to say about seeds
    assert _paired(rows, "a", "missing", "recall@10") == ""
