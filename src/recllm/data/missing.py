"""Inject missing values into a table under a chosen mechanism (MCAR, MAR, MNAR), seeded and exact.

Used to build imputation benchmarks from complete data. For each column, exactly ``round(rate * n_rows)``
currently observed cells are removed, drawn without replacement with per-cell weights:

- ``"mcar"`` (missing completely at random): every observed cell is equally likely.
- ``"mar"`` (missing at random): the weight depends on another, fully observed column (``driver``; by default
  the first fully observed numeric column not being masked, else the first categorical one): high values of a numeric driver, or some categories of a
  categorical driver, make the cell more likely to go missing.
- ``"mnar"`` (missing not at random): the weight depends on the cell's own value: high numbers, or some
  categories, go missing more often.

Weights: a numeric value gets its percentile rank ``r`` in (0, 1] and weight ``r ** strength``; a categorical
value gets the rank of its category in a seeded random order of the categories, scaled the same way.
``strength=0`` turns MAR and MNAR into MCAR; larger values make the dependence stronger.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

MECHANISMS = ("mcar", "mar", "mnar")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def value_weights(values: pd.Series, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Positive selection weights for ``values`` (no NaN): higher numbers, or a seeded set of categories, weigh more."""
    if _is_numeric(values):
        ranks = values.rank(method="average", pct=True).to_numpy(np.float64)
    else:
        codes, uniques = pd.factorize(values.astype(str), sort=True)
        order = rng.permutation(len(uniques))  # category k gets rank order[k] + 1 of len(uniques)
        ranks = (order[codes] + 1) / max(len(uniques), 1)
    return np.power(ranks, strength)


def _column_rng(seed: int, column: str) -> np.random.Generator:
    # keyed by the column's name, so a column's mask does not depend on which other columns are masked
    return np.random.default_rng([int(seed), zlib.crc32(str(column).encode())])


def inject_missing(
    frame: pd.DataFrame,
    columns: Sequence[str],
    rate: float,
    mechanism: str = "mcar",
    seed: int = 0,
    driver: str | None = None,
    strength: float = 2.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove ``round(rate * len(frame))`` observed cells from each of ``columns``.

    Returns ``(masked, mask)``: ``masked`` is a copy of ``frame`` with the chosen cells set to missing (integer
    columns become float so they can hold NaN, or nullable integers when a value is beyond 2^53, which a float would
    change), ``mask`` a boolean DataFrame shaped like ``frame``, True
    exactly where a value was removed. Cells that were already missing are never chosen; every other cell is
    left unchanged. The same ``seed`` gives the same mask.
    """
    columns = list(columns)
    if not columns:
        raise ValueError("columns must name at least one column to mask")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"columns {absent} are not in the frame; it has {list(frame.columns)}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns has duplicates: {columns}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    if mechanism not in MECHANISMS:
        raise ValueError(f"mechanism must be one of {MECHANISMS}, got {mechanism!r}")
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if mechanism == "mar":
        driver = _choose_driver(frame, columns, driver)
    elif driver is not None:
        raise ValueError(f"driver is only used by mechanism='mar', not {mechanism!r}")

    n_remove = int(round(rate * len(frame)))
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    masked = frame.copy()
    for column in columns:
        observed = frame[column].notna().to_numpy()
        if n_remove > observed.sum():
            raise ValueError(f"column {column!r} has only {int(observed.sum())} observed cells; cannot remove "
                             f"{n_remove} (rate {rate} of {len(frame)} rows)")
        rng = _column_rng(seed, column)
        candidates = np.flatnonzero(observed)
        if mechanism == "mcar":
            weights = np.ones(len(candidates))
        else:
            source = frame[driver] if mechanism == "mar" else frame[column]
            weights = value_weights(source.iloc[candidates], rng, strength)
        chosen = rng.choice(candidates, size=n_remove, replace=False, p=weights / weights.sum())
        hit = np.zeros(len(frame), dtype=bool)
        hit[chosen] = True
        mask[column] = hit
        masked[column] = _holding_gaps(frame[column]).mask(hit)
    return masked, mask


def _holding_gaps(values: pd.Series) -> pd.Series:
    """``values`` in a dtype that holds a gap and every value as it is: integers as float64 (exact up to 2^53), or
    beyond that in a nullable integer dtype (pd.NA); bools as objects; any other column as it is."""
    if pd.api.types.is_integer_dtype(values):
        observed = values.dropna()
        if observed.empty or (observed.max() <= 2 ** 53 and observed.min() >= -(2 ** 53)):
            return values.astype(np.float64)
        if isinstance(values.dtype, np.dtype):
            return values.astype(("UInt" if values.dtype.kind == "u" else "Int") + str(8 * values.dtype.itemsize))
        return values
    return values.astype(object) if pd.api.types.is_bool_dtype(values) else values


def _choose_driver(frame: pd.DataFrame, columns: list[str], driver: str | None) -> str:
    if driver is None:
        # a numeric column first; an id-like column (every value distinct, non-numeric) carries no signal
        complete = [c for c in frame.columns if c not in columns and frame[c].notna().all()]
        numeric = [c for c in complete if _is_numeric(frame[c])]
        categorical = [c for c in complete if not _is_numeric(frame[c]) and frame[c].nunique() < len(frame)]
        if not numeric + categorical:
            raise ValueError("mechanism='mar' needs a fully observed column that is not being masked; pass driver=")
        return str((numeric + categorical)[0])
    if driver not in frame.columns:
        raise ValueError(f"driver {driver!r} is not in the frame; it has {list(frame.columns)}")
    if driver in columns:
        raise ValueError(f"driver {driver!r} is also being masked; MAR needs a fully observed driver column")
    if frame[driver].isna().any():
        raise ValueError(f"driver {driver!r} has missing values; MAR needs a fully observed driver column")
    return driver
