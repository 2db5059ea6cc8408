"""Uncertainty for reported figures: bootstrap intervals over users, t-intervals across seeds, paired tests.

Every figure in docs/results carries a 95% interval. Over users the percentile bootstrap is used (metrics such
as HR@10 are far from normal per user); across a handful of seeds a Student-t interval is used.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

# Resample at most this many values at once, so memory stays bounded for large user sets.
_MAX_CELLS = 4_000_000


def _as_values(values: np.ndarray | list[float], name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty: an interval needs at least one value")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] is {arr[bad]}: every value must be finite")
    return arr


def _check_alpha(alpha: float, n_boot: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")


def _bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``, drawn in memory-bounded chunks."""
    n = values.size
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def bootstrap_ci(
    values: np.ndarray | list[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap ``1 - alpha`` interval of the mean: ``(mean, low, high)``.

    ``values`` are per-user scores (e.g. one HR@10 per test user); users are resampled with replacement.
    The same ``seed`` gives the same interval.
    """
    arr = _as_values(values)
    _check_alpha(alpha, n_boot)
    mean = float(arr.mean())
    if arr.size == 1:
        return mean, mean, mean
    means = _bootstrap_means(arr, n_boot, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return mean, float(low), float(high)


class SeedCI(NamedTuple):
    """Mean across seeds with a Student-t interval; ``low``/``high`` are nan for a single seed (see ``note``)."""

    mean: float
    low: float
    high: float
    n_seeds: int

    @property
    def note(self) -> str:
        if self.n_seeds < 2:
            return "one seed: no interval across seeds (run more seeds for one)"
        return f"95% t-interval over {self.n_seeds} seeds"


def seed_ci(values: np.ndarray | list[float], alpha: float = 0.05) -> SeedCI:
    """Mean and ``1 - alpha`` Student-t interval of one figure measured under several seeds.

    With one seed there is no spread to estimate: the interval is ``nan`` and ``note`` says so.
    """
    from scipy import stats

    arr = _as_values(values)
    _check_alpha(alpha, 1)
    mean = float(arr.mean())
    n = arr.size
    if n < 2:
        return SeedCI(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf(1 - alpha / 2, df=n - 1) * arr.std(ddof=1) / math.sqrt(n))
    return SeedCI(mean, mean - half, mean + half, n)


class PairedDiff(NamedTuple):
    """Mean of ``a - b`` over the same users, its bootstrap interval, and a two-sided bootstrap p-value."""

    mean: float
    low: float
    high: float
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return self.low > 0 or self.high < 0


def paired_bootstrap_diff(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDiff:
    """Does method A beat B on the same users? Bootstrap the per-user differences ``a - b``.

    ``a`` and ``b`` must be aligned (element i is the same user under both methods). The p-value is
    two-sided: twice the smaller fraction of resampled mean differences on either side of zero (at most 1),
    with the usual +1 correction so it is never exactly zero.
    """
    a_arr = _as_values(a, "a")
    b_arr = _as_values(b, "b")
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"a and b must hold the same users in the same order; got {a_arr.size} and {b_arr.size} values"
        )
    _check_alpha(alpha, n_boot)
    diff = a_arr - b_arr
    mean = float(diff.mean())
    if not np.any(diff != diff[0]):  # no spread: every resample gives the same difference
        return PairedDiff(mean, mean, mean, 1.0 if mean == 0 else 0.0)
    means = _bootstrap_means(diff, n_boot, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    below = (np.sum(means <= 0) + 1) / (n_boot + 1)
    above = (np.sum(means >= 0) + 1) / (n_boot + 1)
    return PairedDiff(mean, float(low), float(high), float(min(1.0, 2 * min(below, above))))


# ---------------------------------------------------------------------------------------------- over runs
def interval_over_runs(
    run_means: np.ndarray | list[float], per_user: np.ndarray | list[float] | None = None, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """A figure measured by one or more seeded runs: ``(mean, low, high)``.

    With two or more runs, the mean of ``run_means`` and its t-interval across seeds (:func:`seed_ci`); with one,
    the percentile bootstrap over the users of that run (``per_user``), or no interval (nan) without them.
    """
    means = _as_values(run_means, "run_means")
    if means.size >= 2 or per_user is None:
        ci = seed_ci(means, alpha)
        return ci.mean, ci.low, ci.high
    return bootstrap_ci(per_user, alpha=alpha, seed=seed)


class Difference(NamedTuple):
    """``a - b`` with its interval and how the interval was made (``"seeds"``, ``"users"`` or ``"none"``)."""

    mean: float
    low: float
    high: float
    n_seeds: int
    over: str

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero (never without an interval)."""
        return self.low > 0 or self.high < 0


def paired_difference(
    a: np.ndarray | list[float], b: np.ndarray | list[float], a_users: np.ndarray | list[float] | None = None,
    b_users: np.ndarray | list[float] | None = None, seed: int = 0, alpha: float = 0.05,
) -> Difference:
    """Method A minus method B, paired by seed: ``a[i]`` and ``b[i]`` come from the same seeded split.

    Two or more seeds: the mean per-seed difference with its t-interval across seeds. One seed: the paired
    bootstrap over the same users (``a_users``, ``b_users``: that seed's per-user figures), or no interval without
    them.
    """
    a_arr, b_arr = _as_values(a, "a"), _as_values(b, "b")
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must pair the same seeds; got {a_arr.size} and {b_arr.size} values")
    diffs = a_arr - b_arr
    if diffs.size >= 2:
        ci = seed_ci(diffs, alpha)
        return Difference(ci.mean, ci.low, ci.high, ci.n_seeds, "seeds")
    if a_users is not None and b_users is not None:
        d = paired_bootstrap_diff(a_users, b_users, alpha=alpha, seed=seed)
        return Difference(d.mean, d.low, d.high, 1, "users")
    return Difference(float(diffs[0]), math.nan, math.nan, 1, "none")
