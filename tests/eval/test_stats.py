"""Bootstrap, seed and paired intervals: known answers, coverage, determinism, clear errors."""

import math

import numpy as np
import pytest

from recllm.eval.stats import bootstrap_ci, paired_bootstrap_diff, seed_ci


def test_bootstrap_mean_and_interval_contain_truth():
    values = np.random.default_rng(1).binomial(1, 0.3, size=2000).astype(float)
    mean, low, high = bootstrap_ci(values, n_boot=500, seed=0)
    assert mean == pytest.approx(values.mean())
    assert low < mean < high
    # the normal-approximation half width for a proportion is 1.96 * sqrt(p(1-p)/n) ~ 0.020
    se = math.sqrt(mean * (1 - mean) / values.size)
    assert (high - low) / 2 == pytest.approx(1.96 * se, rel=0.2)


def test_bootstrap_is_deterministic_and_seed_dependent():
    values = np.random.default_rng(2).random(300)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_chunked_path_matches_shape(monkeypatch):
    import recllm.eval.stats as stats

    values = np.random.default_rng(5).random(50)
    monkeypatch.setattr(stats, "_MAX_CELLS", 120)  # forces chunks of 2 resamples
    mean, low, high = stats.bootstrap_ci(values, n_boot=101, seed=0)
    assert low <= mean <= high


def test_bootstrap_constant_and_single_values():
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5, 0.5)
    assert bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [float("inf")]])
def test_bootstrap_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        bootstrap_ci(bad)


def test_bootstrap_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)


def test_seed_ci_matches_t_interval():
    values = [0.30, 0.32, 0.31]
    ci = seed_ci(values)
    # t(0.975, df=2) = 4.302653; sd = 0.01; half = 4.302653 * 0.01 / sqrt(3)
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert ci.mean == pytest.approx(0.31)
    assert ci.low == pytest.approx(0.31 - half, rel=1e-5)
    assert ci.high == pytest.approx(0.31 + half, rel=1e-5)
    assert ci.n_seeds == 3 and "3 seeds" in ci.note


def test_seed_ci_single_seed_is_nan_and_says_so():
    ci = seed_ci([0.4])
    assert ci.mean == 0.4 and math.isnan(ci.low) and math.isnan(ci.high)
    assert "one seed" in ci.note


def test_paired_diff_detects_a_real_gain():
    rng = np.random.default_rng(0)
    b = rng.binomial(1, 0.3, size=1000).astype(float)
    a = np.maximum(b, rng.binomial(1, 0.2, size=1000))  # a wins on extra users, never loses
    out = paired_bootstrap_diff(a, b, seed=0)
    assert out.mean == pytest.approx((a - b).mean())
    assert out.low > 0 and out.significant and out.p_value < 0.01


def test_paired_diff_no_difference_is_not_significant():
    rng = np.random.default_rng(1)
    a = rng.binomial(1, 0.3, size=500).astype(float)
    b = a[rng.permutation(500)]  # same distribution, unrelated users
    out = paired_bootstrap_diff(a, b, seed=0)
    assert out.low < 0 < out.high and not out.significant and out.p_value > 0.05


def test_paired_diff_identical_and_misaligned():
    same = paired_bootstrap_diff([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert same.mean == 0 and same.p_value == 1.0 and not same.significant
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_diff([1.0, 0.0], [1.0, 0.0, 1.0])
