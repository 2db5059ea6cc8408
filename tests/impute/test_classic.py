"""Classic imputers: scikit-learn conformance, what each fills, and clear errors on bad input."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from recllm.data.dataset import DataError
from recllm.impute.classic import DeletionImputer, KNNTableImputer, MeanModeImputer, MICEImputer, ZeroImputer
from recllm.impute.registry import IMPUTERS, make_imputer

from .conftest import make_table, mask_cells

CLASSIC = [DeletionImputer, ZeroImputer, MeanModeImputer, KNNTableImputer, MICEImputer]
# transform records what it filled in ``report_`` by design, which this one check forbids.
EXPECTED_FAILED = {"check_dict_unchanged": "transform records what it filled in report_ (by design)"}


@parametrize_with_checks([cls() for cls in CLASSIC], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_conformance(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", CLASSIC)
def test_fills_every_gap_and_keeps_dtypes(cls, table):
    masked, mask = mask_cells(table, ["age", "gender", "occupation", "income", "note"], 0.2)
    out = cls().fit(masked).transform(masked)
    if cls is DeletionImputer:
        assert list(out.index) == list(masked.index[~mask.any(axis=1)])
    else:
        assert out.shape == masked.shape and list(out.index) == list(masked.index)
    assert not out.isna().any().any()
    pd.testing.assert_frame_equal(out[~mask.loc[out.index].any(axis=1)], masked.loc[out.index][~mask.loc[out.index].any(axis=1)])


def test_zero_and_mean_values(table):
    masked, mask = mask_cells(table, ["age", "occupation"], 0.3)
    zero = ZeroImputer().fit(masked).transform(masked)
    assert (zero.loc[mask["age"], "age"] == 0).all()
    assert (zero.loc[mask["occupation"], "occupation"] == "missing").all()
    mean = MeanModeImputer().fit(masked).transform(masked)
    assert np.allclose(mean.loc[mask["age"], "age"], masked["age"].mean())
    assert (mean.loc[mask["occupation"], "occupation"] == masked["occupation"].mode()[0]).all()
    median = MeanModeImputer(strategy="median").fit(masked).transform(masked)
    assert np.allclose(median.loc[mask["age"], "age"], masked["age"].median())


def test_zero_fills_numeric_flags_with_zero():
    frame = pd.DataFrame({"flag": [0, 1, 1, np.nan, 0, 1], "x": [1.0, 2, 3, 4, 5, 6]})
    out = ZeroImputer().fit(frame).transform(frame)
    assert out["flag"].tolist() == [0, 1, 1, 0, 0, 1]


@pytest.mark.parametrize("cls", [KNNTableImputer, MICEImputer])
def test_model_based_imputers_use_the_other_columns(cls):
    table = make_table(n=200, seed=1)
    masked, mask = mask_cells(table, ["occupation", "income"], 0.2, seed=2)
    out = cls().fit(masked).transform(masked)
    occ = mask["occupation"]
    accuracy = (out.loc[occ, "occupation"] == table.loc[occ, "occupation"]).mean()
    mode_accuracy = (table.loc[occ, "occupation"] == masked["occupation"].mode()[0]).mean()
    assert accuracy > mode_accuracy + 0.2
    inc = mask["income"] & ~mask["occupation"]  # (a row missing both can lock MICE's chain at its start value)
    rmse = np.sqrt(((out.loc[inc, "income"] - table.loc[inc, "income"]) ** 2).mean())
    assert rmse < 0.5 * table["income"].std()
    assert set(out["occupation"]) <= {"student", "engineer", "retired"}
    assert out["income"].between(masked["income"].min(), masked["income"].max()).all()


def test_mice_is_seeded(table):
    masked, _ = mask_cells(table, ["age", "income", "occupation"], 0.3)
    a = MICEImputer(seed=3).fit(masked).transform(masked)
    b = MICEImputer(seed=3).fit(masked).transform(masked)
    pd.testing.assert_frame_equal(a, b)


def test_categorical_dtype_and_nullable_int_kept():
    frame = pd.DataFrame({
        "c": pd.Categorical(["a", "b", None, "a", "a"]),
        "n": pd.array([1, None, 3, 4, 4], dtype="Int64"),
        "s": pd.Series(["x", "y", None, "y", "y"], dtype="string"),
    })
    out = MeanModeImputer().fit(frame).transform(frame)
    assert isinstance(out["c"].dtype, pd.CategoricalDtype) and out["c"].tolist() == ["a", "b", "a", "a", "a"]
    assert str(out["n"].dtype) == "Int64" and out["n"].tolist() == [1, 3, 3, 4, 4]
    assert out["s"].dtype == frame["s"].dtype and out["s"].tolist() == ["x", "y", "y", "y", "y"]
    zero = ZeroImputer().fit(frame).transform(frame)
    assert zero["c"].tolist()[2] == "missing" and "missing" in zero["c"].cat.categories


def test_unseen_category_at_transform_is_kept(table):
    masked, _ = mask_cells(table, ["age"], 0.3)
    imp = KNNTableImputer().fit(masked)
    new = masked.copy()
    new.loc[0, "occupation"] = "astronaut"
    out = imp.transform(new)
    assert out.loc[0, "occupation"] == "astronaut"


def test_text_columns_get_the_mode_from_classic_models(table):
    masked, mask = mask_cells(table, ["note"], 0.3)
    imp = KNNTableImputer(max_categories=10).fit(masked)
    assert imp.kinds_["note"] == "text"
    out = imp.transform(masked)
    assert (out.loc[mask["note"], "note"] == imp.columns_["note"].mode).all()
    assert imp.report_.how["mode"] == mask["note"].sum()


@pytest.mark.parametrize("name", sorted(IMPUTERS))
def test_bad_input_errors(name):
    imp = make_imputer(name) if name != "llm" else None
    if imp is None:
        pytest.skip("LLMImputer has its own tests")
    empty_column = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan, np.nan, np.nan]})
    with pytest.raises(DataError, match="'b'"):
        make_imputer(name).fit(empty_column)
    with pytest.raises(DataError, match="empty"):
        make_imputer(name).fit(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    junk = pd.DataFrame({"age": ["34", "51", "abc", "22", None, "40", "33", "18", "29", "61", "70"]})
    with pytest.raises(DataError, match=r"'age'.*row 2.*'abc'"):
        make_imputer(name).fit(junk)
    with pytest.raises(DataError, match="declared numeric"):
        make_imputer(name, numeric=("nope",)).fit(empty_column)


@pytest.mark.parametrize("imputer, field", [
    (ZeroImputer(fill_value="abc"), "ZeroImputer.fill_value"), (ZeroImputer(fill_value=None), "ZeroImputer.fill_value"),
    (ZeroImputer(fill_value=float("nan")), "ZeroImputer.fill_value"),
    (KNNTableImputer(n_neighbors="3"), "KNNTableImputer.n_neighbors"),
    (KNNTableImputer(n_neighbors=True), "KNNTableImputer.n_neighbors"),
    (ZeroImputer(max_categories="5"), "ZeroImputer.max_categories"),
    (MeanModeImputer(max_categories=2.5), "MeanModeImputer.max_categories"),
    (MICEImputer(max_iter=1.5), "MICEImputer.max_iter"), (MICEImputer(max_iter=0), "MICEImputer.max_iter"),
])
def test_bad_parameters_are_refused_in_fit_by_name(imputer, field, table):
    """``__init__`` stores them unchanged (scikit-learn); ``fit`` names the parameter instead of a bare "could not
    convert string to float", TypeError or "'<' not supported"."""
    with pytest.raises(ValueError, match=rf"{field} must be"):
        imputer.fit(table)
    KNNTableImputer(n_neighbors=np.int64(2), max_categories=np.int64(50)).fit(table)
    ZeroImputer(fill_value=np.float32(-1)).fit(table)


def test_junk_in_a_declared_numeric_column_at_transform(table):
    imp = MeanModeImputer().fit(table)
    bad = table.astype({"age": object})
    bad.loc[5, "age"] = "n/a?"
    with pytest.raises(DataError, match=r"'age'.*row 5"):
        imp.transform(bad)


def test_deletion_with_no_complete_row():
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, 2.0]})
    with pytest.raises(DataError, match="no row of the table is complete"):
        DeletionImputer().fit(frame)


def test_wrong_columns_at_transform(table):
    imp = MeanModeImputer().fit(table)
    with pytest.raises(DataError, match="differ from those seen in fit"):
        imp.transform(table[list(reversed(table.columns))])


def test_numeric_strings_are_numbers():
    frame = pd.DataFrame({"x": ["1.5", "2.5", None, "3"], "y": ["a", "b", "a", None]})
    imp = MeanModeImputer().fit(frame)
    assert imp.kinds_ == {"x": "numeric", "y": "categorical"}
    out = imp.transform(frame)
    # modelled as numbers, written back as the column's text: observed cells as given, the mean with its decimals
    assert out["x"].tolist() == ["1.5", "2.5", "2.3", "3"] and out["x"].dtype == frame["x"].dtype


def test_unknown_registry_name():
    with pytest.raises(ValueError, match="unknown imputer 'nope'"):
        make_imputer("nope")


@pytest.mark.parametrize("name", ["mean", "knn", "mice"])
def test_a_nan_value_in_a_pyarrow_float_column_is_refused(name):
    """In a pyarrow float column NaN is a value, not a gap: it made the mean NaN, a 'filled' cell stayed <NA> and
    MICE failed in scikit-learn."""
    import pyarrow as pa

    nan = pd.arrays.ArrowExtensionArray(pa.array([1.0, float("nan"), None, 3.0, 4.0, 5.0], from_pandas=False))
    frame = pd.DataFrame({"f": nan, "g": [1.0, 2, 3, 4, np.nan, 6]})
    with pytest.raises(DataError, match=r"column 'f' row 1 holds NaN .*astype\('float64'\)"):
        make_imputer(name).fit(frame)


def test_a_nan_fill_is_never_counted_as_filled():
    class NaNImputer(MeanModeImputer):
        def _impute(self, frame, mask, report):
            return {col: [np.nan] * int(mask[col].sum()) for col in frame.columns}

    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0], "y": [1.0, 2.0, 3.0]})
    imputer = NaNImputer().fit(frame)
    with pytest.raises(DataError, match="no value for 1 missing cell"):
        imputer.transform(frame)


@pytest.mark.parametrize("name", ["mean", "knn", "mice"])
def test_pyarrow_dates_and_periods_are_filled_with_an_observed_value(name):
    """pandas.to_numeric gives a pyarrow date NaN (a value) and a period its ordinal: the columns were taken for
    numbers, then called empty or unable to hold the fill."""
    import datetime as dt

    import pyarrow as pa

    days = [dt.date(2020, 1, 1), dt.date(2020, 1, 2), None] + [dt.date(2020, 1, 2)] * 5
    frame = pd.DataFrame({
        "d": pd.array(days, dtype=pd.ArrowDtype(pa.date32())),
        "t": pd.array([None if d is None else dt.datetime(d.year, d.month, d.day) for d in days],
                      dtype=pd.ArrowDtype(pa.timestamp("us"))),
        "p": pd.array([pd.Period("2020-01", "M"), None] + [pd.Period("2020-02", "M")] * 6, dtype="period[M]"),
        "x": [1.0, 2.0, 3.0, np.nan, 5.0, 6.0, 7.0, 8.0],
    })
    imputer = make_imputer(name)
    out = imputer.fit(frame).transform(frame)
    assert {c: imputer.kinds_[c] for c in "dtp"} == {"d": "categorical", "t": "categorical", "p": "categorical"}
    assert out["d"].iloc[2] == dt.date(2020, 1, 2) and out["t"].iloc[2] == pd.Timestamp("2020-01-02")
    assert out["p"].iloc[1] == pd.Period("2020-02", "M")
    assert (out.dtypes == frame.dtypes).all() and out.drop(index=[1, 2, 3]).equals(frame.drop(index=[1, 2, 3]))


def test_one_column_name_declares_that_column_not_its_letters():
    table = pd.DataFrame({"gender": [1.0, 2.0, None, 1.0], "age": [20.0, None, 30.0, 40.0]})
    imputer = MeanModeImputer(categorical="gender").fit(table)
    assert imputer.kinds_ == {"gender": "categorical", "age": "numeric"}
    assert imputer.transform(table)["gender"].tolist() == [1.0, 2.0, 1.0, 1.0]
