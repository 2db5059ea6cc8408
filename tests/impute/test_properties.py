"""The contract every imputer keeps: observed cells are never changed, and every gap is filled (hypothesis).

"Never changed" is strict: every observed cell comes back as the same value of the same type (``"02582"`` stays that
string, a 17-digit int64 stays exact, an object column keeps its Python objects) and a column keeps its dtype (a
categorical one may gain categories). The tables mix the awkward columns real files have: number-like text, leading
zeros, long integers as text and as int64, mixed-type object columns, columns without gaps, string and categorical
dtypes. Every registered imputer runs, the LLM one on the tiny test model.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recllm.data.dataset import DataError
from recllm.impute.registry import IMPUTERS
from recllm.llm.sft import SFTConfig

CLASSIC = [name for name in sorted(IMPUTERS) if name not in ("llm", "great")]
# the property does not depend on the number of rounds (or trees)
FAST = {"mice": {"max_iter": 2}, "miceforest": {"iterations": 1, "lightgbm_params": {"num_iterations": 4}}}
TINY_SFT = SFTConfig(epochs=1, batch_size=8, learning_rate=1e-3, checkpoint_every=0, show_progress=False)


def llm_imputer(lm):
    """An LLMImputer that fits and fills in seconds on the tiny test model."""
    return IMPUTERS["llm"](model=lm, sft=TINY_SFT, max_train_examples=4, cache=False, dtype="float32",
                           max_categories=10, numeric_max_new_tokens=3, text_max_new_tokens=3)


def great_imputer(folder):
    """A GReaTImputer that fits and fills in seconds on the tiny test model's GReaT folder."""
    return IMPUTERS["great"](model=str(folder), epochs=1, max_steps=1, batch_size=4, learning_rate=1e-3,
                             max_retries=1)


@pytest.fixture(scope="module")
def great_tiny(tiny):
    """The tiny test model saved once as GReaT's backbone folder."""
    import shutil

    from recllm.impute.peers import great_backbone_folder

    folder, _ = great_backbone_folder(tiny)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def make_imputer(name: str, request: pytest.FixtureRequest):
    """A fast imputer by registry name; the LLM ones on the session's tiny model (built only when needed)."""
    if name == "llm":
        return llm_imputer(request.getfixturevalue("tiny"))
    if name == "great":
        return great_imputer(request.getfixturevalue("great_tiny"))
    return IMPUTERS[name](**FAST.get(name, {}))


@st.composite
def masked_tables(draw):
    """A random mixed-type table (numbers, whole numbers, categories, flags, text) and a random mask."""
    n = draw(st.integers(2, 12))
    floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
    columns = {
        "num": draw(st.lists(floats, min_size=n, max_size=n)),
        "whole": draw(st.lists(st.integers(-100, 100), min_size=n, max_size=n)),
        "cat": draw(st.lists(st.sampled_from(["a", "b", "c d", "é"]), min_size=n, max_size=n)),
        "flag": draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)),
        "text": draw(st.lists(st.text(min_size=0, max_size=8), min_size=n, max_size=n)),
    }
    frame = pd.DataFrame(columns)
    frame["whole"] = frame["whole"].astype(float)
    frame["flag"] = frame["flag"].astype(float)
    mask = np.array(draw(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=n, max_size=n)))
    return frame.mask(mask), pd.DataFrame(mask, columns=frame.columns)


WORDS = ["red", "green", "blue sky", "é"]
NO_GAPS = ("zip_full", "id_int", "small_int", "words_full")


def _numeric_share(values: list) -> float:
    return float(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").notna().mean()) if values else 0.0


@st.composite
def awkward_tables(draw):
    """A table with the columns that tempt an imputer to rewrite observed cells, and a mask (no gaps in NO_GAPS)."""
    n = draw(st.integers(3, 9))

    def column(strategy):
        return draw(st.lists(strategy, min_size=n, max_size=n))

    long_ints = st.integers(10**16, 10**17 - 1)
    mixed = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False), st.booleans(),
                      st.sampled_from(["a", "b c", "01", "1.50"]))
    frame = pd.DataFrame({
        "zip": pd.Series(column(st.integers(0, 99999).map("{:05d}".format)), dtype="str"),
        "zip_full": pd.Series(column(st.integers(0, 99999).map("{:05d}".format)), dtype=object),
        "id_text": pd.Series(column(long_ints.map(str)), dtype=object),
        "id_int": pd.Series(column(long_ints), dtype="int64"),
        "price": pd.Series(column(st.integers(-9999, 9999).map(lambda v: f"{v / 100:.2f}")), dtype="string"),
        "mixed": pd.Series(column(mixed), dtype=object),
        "words": pd.Series(column(st.sampled_from(WORDS)), dtype="string"),
        "words_full": pd.Series(column(st.sampled_from(WORDS)), dtype="str"),
        "level": pd.Categorical(column(st.sampled_from(["lo", "mid", "hi"])), categories=["lo", "mid", "hi"]),
        "small_int": pd.Series(column(st.integers(-3, 3)), dtype="int64"),
        "count": pd.array(column(st.integers(0, 50)), dtype="Int64"),
        "num": column(st.floats(-1e3, 1e3, allow_nan=False, width=32)),
    })
    mask = pd.DataFrame(np.array(draw(st.lists(st.lists(st.booleans(), min_size=frame.shape[1],
                                                        max_size=frame.shape[1]), min_size=n, max_size=n))),
                        columns=frame.columns)
    mask[list(NO_GAPS)] = False
    share = _numeric_share([v for v, m in zip(frame["mixed"], mask["mixed"]) if not m])
    assume(not 0.9 <= share < 1)  # a nearly-numeric column with junk is an input error (tested elsewhere)
    masked = frame.copy()
    for col in frame.columns:
        masked[col] = frame[col].mask(mask[col])  # each column keeps its own dtype and missing-value marker
    return masked, mask


def assert_same_dtype(before: pd.Series, after: pd.Series) -> None:
    """Same dtype; a categorical column may only gain categories (after the ones it had)."""
    if isinstance(before.dtype, pd.CategoricalDtype):
        assert isinstance(after.dtype, pd.CategoricalDtype) and after.dtype.ordered == before.dtype.ordered
        known = list(before.dtype.categories)
        assert list(after.dtype.categories[:len(known)]) == known, before.name
    else:
        assert after.dtype == before.dtype, f"{before.name!r}: {before.dtype} became {after.dtype}"


def assert_observed_identical(before: pd.DataFrame, after: pd.DataFrame, mask: pd.DataFrame) -> None:
    """Every observed cell of ``before`` that survives in ``after`` is the same value of the same type, and every
    column keeps its dtype."""
    for col in before.columns:
        b, a = before.loc[after.index, col], after[col]
        assert_same_dtype(b, a)
        observed = ~mask.loc[after.index, col].to_numpy()
        for row, x, y in zip(after.index[observed], b.array[observed], a.array[observed]):
            assert type(x) is type(y) and x == y, f"{col!r} row {row!r}: {x!r} ({type(x).__name__}) became {y!r}"


def check_contract(imputer, masked: pd.DataFrame, mask: pd.DataFrame) -> pd.DataFrame | None:
    """Fit + transform ``masked``: an error where the table cannot be learned, otherwise the contract holds."""
    all_missing = mask.all(axis=0).any()
    no_complete_row = not (~mask).all(axis=1).any()
    if all_missing or (not imputer.fills_cells and no_complete_row):
        with pytest.raises(DataError):
            imputer.fit(masked)
        return None
    given = masked.copy()
    out = imputer.fit(masked).transform(masked)
    pd.testing.assert_frame_equal(masked, given)  # the caller's frame itself is left alone
    assert set(out.index) <= set(masked.index) and list(out.columns) == list(masked.columns)
    if imputer.fills_cells:
        assert list(out.index) == list(masked.index)
        assert imputer.report_.filled == {c: int(k) for c, k in mask.sum().items() if k}
    else:
        assert list(out.index) == list(masked.index[~mask.any(axis=1)])
    assert not out.isna().any().any()
    assert_observed_identical(masked, out, mask)
    return out


@pytest.mark.parametrize("name", CLASSIC)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=masked_tables())
def test_observed_cells_never_change(name, data):
    masked, mask = data
    check_contract(IMPUTERS[name](**FAST.get(name, {})), masked, mask)


def _check_awkward(imputer, masked: pd.DataFrame, mask: pd.DataFrame) -> None:
    """The contract, and number-like text filled with text written like the column: digits only for zip codes and
    ids (5 of them when the zip codes have leading zeros), two decimals for prices."""
    out = check_contract(imputer, masked, mask)
    if out is None or not imputer.fills_cells:
        return
    for col, pattern in (("zip", r"\d+"), ("id_text", r"-?\d+"), ("price", r"-?\d+\.\d\d")):
        filled = out.loc[mask[col], col]
        assert all(type(v) is str for v in filled.array), (col, filled.tolist())
        assert filled.astype(str).str.fullmatch(pattern).all(), (col, filled.tolist())
    if masked.loc[~mask["zip"], "zip"].str.startswith("0").any():
        assert (out.loc[mask["zip"], "zip"].str.len() == 5).all(), out.loc[mask["zip"], "zip"].tolist()


@pytest.mark.parametrize("name", CLASSIC)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=awkward_tables())
def test_awkward_columns_keep_every_observed_cell(name, data):
    _check_awkward(IMPUTERS[name](**FAST.get(name, {})), *data)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=awkward_tables())
def test_awkward_columns_keep_every_observed_cell_llm(tiny, data):
    _check_awkward(llm_imputer(tiny), *data)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=awkward_tables())
def test_awkward_columns_keep_every_observed_cell_great(great_tiny, data):
    _check_awkward(great_imputer(great_tiny), *data)


def zip_and_id_table() -> pd.DataFrame:
    """The reported bug: zip codes with leading zeros, 17-digit ids as text and as int64, one column with gaps."""
    return pd.DataFrame({
        "zip": ["02582", "10001", None, "00501", "02582", "90210", "02139", None],
        "id": ["10000000000000315", "10000000000000316", "10000000000000317", "10000000000000318",
               "10000000000000319", "10000000000000320", "10000000000000321", "10000000000000322"],
        "id_int": np.array([10000000000000315 + i for i in range(8)], dtype=np.int64),
        "score": [1.5, np.nan, 3.0, 4.5, np.nan, 2.0, 1.0, 3.5],
    })


@pytest.mark.parametrize("name", sorted(IMPUTERS))
def test_zip_codes_and_long_ids_come_back_exactly(name, request):
    frame = zip_and_id_table()
    given = frame.copy()
    out = make_imputer(name, request).fit(frame).transform(frame)
    kept = out.index
    assert (out.loc[0, "zip"], out.loc[3, "zip"]) == ("02582", "00501")  # complete rows: every imputer keeps them
    assert out["id"].tolist() == given.loc[kept, "id"].tolist()
    assert out["id"].dtype == given["id"].dtype and out["id_int"].dtype == np.int64
    assert out["id_int"].tolist() == given.loc[kept, "id_int"].tolist()
    assert_observed_identical(given, out, given.isna())
    if name != "deletion":
        filled = out.loc[[2, 7], "zip"].tolist()
        assert all(type(v) is str and len(v) == 5 and v.isdigit() for v in filled), filled


@pytest.mark.parametrize("name", sorted(IMPUTERS))
def test_array_input_still_works(name, request):
    """The scikit-learn path: a float array in, a float array out, observed entries equal."""
    X = np.array([[1.0, 2.0], [np.nan, 3.0], [4.0, np.nan], [5.0, 6.0], [2.0, 2.5]])
    out = make_imputer(name, request).fit(X).transform(X)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    rows = np.flatnonzero(~np.isnan(X).any(axis=1)) if name == "deletion" else np.arange(len(X))
    observed = ~np.isnan(X[rows])
    assert np.array_equal(out[observed], X[rows][observed]) and not np.isnan(out).any()


def other_dtypes_table() -> pd.DataFrame:
    """Columns of the other dtypes a table may hold, each with gaps: booleans, datetimes (naive, zoned, seconds),
    durations, integer categories, float32, nullable floats, an object column of ints."""
    frame = pd.DataFrame({
        "flag": pd.array([True, None, False, True, False, True], dtype="boolean"),
        "flag_obj": pd.Series([True, None, False, True, False, True], dtype=object),
        "when": pd.to_datetime(["2020-01-01", None, "2021-06-01", "2020-03-01", "2022-01-01", "2020-05-01"]),
        "zoned": pd.to_datetime(["2020-01-01", "2020-02-01", None, "2020-03-01", "2022-01-01", "2021-01-01"])
        .tz_localize("Europe/Oslo"),
        "lasted": pd.to_timedelta(["1h", "90min", "2h", None, "4h", "5h"]),
        "stars": pd.Categorical([1, 2, None, 2, 3, 1]),
        "f32": np.array([1.5, 2.0, 2.5, 3, np.nan, 5], dtype=np.float32),
        "F64": pd.array([1.5, 2.0, 2.5, 3, 4, None], dtype="Float64"),
        "ints_obj": pd.Series([1, 2, None, 4, 5, 6], dtype=object),
        "x": [1.0, 2, 3, 4, 5, 6],
    })
    frame["when_s"] = frame["when"].astype("datetime64[s]")
    return frame


@pytest.mark.parametrize("name", sorted(IMPUTERS))
def test_other_dtypes_keep_their_dtype(name, request):
    frame = other_dtypes_table()
    imputer = make_imputer(name, request)
    out = check_contract(imputer, frame, frame.isna())
    if not imputer.fills_cells:
        return
    assert imputer.kinds_["flag_obj"] == "categorical"  # True/False, not the numbers 1/0
    assert all(type(v) is bool for v in out["flag_obj"])
    assert all(type(v) is int for v in out["ints_obj"])
    assert out.loc[2, "stars"] in (0, 1, 2, 3) and out["stars"].cat.categories.dtype == np.int64
