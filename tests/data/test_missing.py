"""inject_missing: exact rate per column, MCAR/MAR/MNAR dependence, determinism, observed cells untouched."""

import numpy as np
import pandas as pd
import pytest

from recllm.data.missing import inject_missing


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 2000
    return pd.DataFrame({
        "age": rng.integers(18, 80, n),
        "income": rng.normal(50_000, 15_000, n),
        "city": rng.choice(["a", "b", "c", "d", "e"], n),
        "score": rng.random(n),
        "clicked": rng.integers(0, 2, n).astype(bool),
    })


@pytest.mark.parametrize("mechanism", ["mcar", "mar", "mnar"])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.3])
def test_exact_rate_and_observed_cells_untouched(frame, mechanism, rate):
    cols = ["age", "income", "city", "clicked"]
    masked, mask = inject_missing(frame, cols, rate, mechanism, seed=3, driver="score" if mechanism == "mar" else None)
    assert mask.shape == frame.shape and (mask.columns == frame.columns).all() and (mask.dtypes == bool).all()
    for col in cols:
        assert mask[col].sum() == round(rate * len(frame))
        assert masked.loc[mask[col], col].isna().all()
        kept = ~mask[col]
        assert (masked.loc[kept, col].astype(object) == frame.loc[kept, col].astype(object)).all()
    assert not mask["score"].any() and masked["score"].equals(frame["score"])
    assert masked["age"].dtype == np.float64  # integers become float to hold NaN


def test_deterministic_by_seed_and_column_independent(frame):
    a = inject_missing(frame, ["age", "city"], 0.1, "mnar", seed=7)[1]
    b = inject_missing(frame, ["age", "city"], 0.1, "mnar", seed=7)[1]
    c = inject_missing(frame, ["age", "city"], 0.1, "mnar", seed=8)[1]
    only_age = inject_missing(frame, ["age"], 0.1, "mnar", seed=7)[1]
    assert a.equals(b) and not a.equals(c)
    assert a["age"].equals(only_age["age"])  # a column's mask does not depend on the other columns masked


def test_mcar_is_unrelated_to_values(frame):
    _, mask = inject_missing(frame, ["income"], 0.3, "mcar", seed=1)
    removed = frame.loc[mask["income"], "income"].mean()
    assert abs(removed - frame["income"].mean()) < 0.1 * frame["income"].std()


def test_mnar_removes_larger_values_more_often(frame):
    _, mask = inject_missing(frame, ["income", "age"], 0.2, "mnar", seed=0)
    for col in ("income", "age"):
        removed, kept = frame.loc[mask[col], col], frame.loc[~mask[col], col]
        assert removed.mean() > kept.mean() + 0.3 * frame[col].std()
    _, flat = inject_missing(frame, ["income"], 0.2, "mnar", seed=0, strength=0.0)  # strength 0 = MCAR
    assert abs(frame.loc[flat["income"], "income"].mean() - frame["income"].mean()) < 0.15 * frame["income"].std()


def test_mnar_categories_go_missing_at_different_rates(frame):
    _, mask = inject_missing(frame, ["city"], 0.3, "mnar", seed=0)
    rates = mask["city"].groupby(frame["city"]).mean()
    assert rates.max() > 2 * rates.min()


def test_mar_depends_on_the_driver_not_the_value(frame):
    _, mask = inject_missing(frame, ["income"], 0.2, "mar", seed=0, driver="score")
    assert frame.loc[mask["income"], "score"].mean() > frame.loc[~mask["income"], "score"].mean() + 0.1
    assert abs(frame.loc[mask["income"], "income"].mean() - frame["income"].mean()) < 0.15 * frame["income"].std()
    _, default = inject_missing(frame, ["income"], 0.2, "mar", seed=0)  # default driver: first numeric complete column
    assert frame.loc[default["income"], "age"].mean() > frame.loc[~default["income"], "age"].mean()


@pytest.mark.parametrize("dtype", ["int64", "uint64", "Int64"])
def test_integers_beyond_float64_keep_every_digit(dtype):
    """Masking made every integer column float64, which rounds 2^53 + 1 (an id) to 2^53."""
    ids = [2 ** 53 + 1, 2 ** 53 + 3, 12345678901234567, 4, 5, 6]
    frame = pd.DataFrame({"id": pd.array(ids, dtype=dtype), "x": [1.0, 2, 3, 4, 5, 6]})
    masked, mask = inject_missing(frame, ["id", "x"], 0.34, seed=0)
    assert masked["id"].dtype == {"int64": "Int64", "uint64": "UInt64"}.get(dtype, dtype)
    assert masked["id"].isna().tolist() == mask["id"].tolist() and mask["id"].sum() == 2
    kept = ~mask["id"].to_numpy()
    assert list(masked["id"][kept]) == [v for v, keep in zip(ids, kept) if keep]


def test_already_missing_cells_are_never_chosen(frame):
    holed = frame.copy()
    holed["income"] = holed["income"].mask(np.arange(len(holed)) % 2 == 0)
    masked, mask = inject_missing(holed, ["income"], 0.4, "mcar", seed=0)
    assert not mask.loc[holed["income"].isna(), "income"].any()
    assert masked["income"].isna().sum() == holed["income"].isna().sum() + round(0.4 * len(holed))
    with pytest.raises(ValueError, match="only 1000 observed cells"):
        inject_missing(holed, ["income"], 0.6, "mcar")


@pytest.mark.parametrize("kwargs, match", [
    ({"columns": []}, "at least one column"),
    ({"columns": ["nope"]}, "not in the frame"),
    ({"rate": 1.0}, "rate must be"),
    ({"mechanism": "random"}, "mechanism must be"),
    ({"mechanism": "mar", "driver": "income"}, "also being masked"),
    ({"mechanism": "mcar", "driver": "score"}, "only used by mechanism='mar'"),
    ({"strength": -1}, "strength"),
])
def test_bad_arguments(frame, kwargs, match):
    args = {"columns": ["income"], "rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        inject_missing(frame, **args)
