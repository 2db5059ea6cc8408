"""The shared helpers of every report: an interval over seeded runs, a paired difference, the tie-broken rank."""

import math

import numpy as np
import pytest

from recllm.eval.ranking import row_target_ranks
from recllm.eval.stats import bootstrap_ci, interval_over_runs, paired_difference, seed_ci


def test_interval_over_runs_uses_seeds_then_users():
    assert interval_over_runs([0.1, 0.2, 0.3]) == tuple(seed_ci([0.1, 0.2, 0.3])[:3])
    users = np.linspace(0, 1, 50)
    assert interval_over_runs([0.5], users, seed=3) == bootstrap_ci(users, seed=3)
    mean, low, high = interval_over_runs([0.5])
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)


def test_paired_difference_by_seed_then_by_user():
    d = paired_difference([0.3, 0.32, 0.31], [0.2, 0.21, 0.2])
    assert d.over == "seeds" and d.n_seeds == 3 and d.mean == pytest.approx(0.1066667) and d.significant
    a, b = np.full(40, 0.6), np.r_[np.full(20, 0.5), np.full(20, 0.6)]
    one = paired_difference([0.6], [0.55], a, b, seed=1)
    assert one.over == "users" and one.mean == pytest.approx(0.05) and one.low > 0
    bare = paired_difference([0.6], [0.55])
    assert bare.over == "none" and math.isnan(bare.low) and not bare.significant
    with pytest.raises(ValueError, match="pair the same seeds"):
        paired_difference([0.1, 0.2], [0.1])


def test_row_target_ranks_are_pessimistic_on_ties_and_ragged_rows():
    ranks = row_target_ranks([np.array([0.1, 0.9, 0.5]), np.array([0.5, 0.5, 0.5]), np.array([0.9, 0.1])], [1, 0, 0])
    assert ranks.tolist() == [1, 3, 1]
    assert row_target_ranks([np.array([0.2, 0.7])], [0]).tolist() == [2]
    assert row_target_ranks([], []).size == 0
