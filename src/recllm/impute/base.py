"""The imputer protocol: a scikit-learn transformer that fills the missing cells of a mixed-type table.

Every imputer here takes a pandas DataFrame (or a 2-D array) whose columns are numeric, categorical or text, learns
what it needs in ``fit`` and returns a filled copy from ``transform``. Observed cells are never written: the models
work on a copy whose numeric columns are floats, subclasses only return values for the missing cells of each column
(:meth:`BaseImputer._impute`), and the base class writes them into a copy of the caller's own frame, so every
observed cell comes back as the same value of the same type (``"02582"`` stays that string) and every column keeps
its dtype. How a filled value is written into a column is :func:`recllm.impute.cells.represent`'s rule.
A cell is missing when ``pandas.isna`` says so (NaN, None, pd.NA, NaT); an empty string is a value, and a NaN that a
pyarrow float column keeps as a value (not a null) is an error naming the column. A fill is never NaN.

Code columns: a numeric column that holds a few codes (a 1-5 rating, age bands) gets only those codes written into its
gaps, by every imputer -- a numeric estimate is snapped to the nearest observed code -- so an exact-match accuracy
means something. ``code_columns="auto"`` (default) detects them (:func:`detect_code_columns`); a list names them;
``()`` turns it off. ``report_.code_columns`` says which columns were treated so and why.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from recllm.data.dataset import DataError
from recllm.impute.cells import CellFormat, write_cells
from recllm.utils import is_integer

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TEXT = "text"
KINDS = (NUMERIC, CATEGORICAL, TEXT)
MAX_CODES = 20  # a numeric column of whole numbers with at most this many distinct values is a code column (auto)


@dataclass(frozen=True)
class ColumnInfo:
    """What ``fit`` learned about one column from its observed cells."""

    name: str
    kind: str
    n_observed: int
    mean: float | None = None  # numeric only
    low: float | None = None
    high: float | None = None
    integral: bool = False  # numeric with whole-number values only
    categories: tuple[Any, ...] = ()  # categorical/text: observed values, most frequent first
    mode: Any = None


@dataclass
class ImputationReport:
    """What one ``transform`` call filled and how (``imputer.report_``)."""

    method: str
    n_rows_in: int = 0
    n_rows_out: int = 0
    filled: dict[str, int] = field(default_factory=dict)  # column -> cells filled
    how: dict[str, int] = field(default_factory=dict)  # fill route (e.g. "mean", "llm-score") -> cells
    fallbacks: dict[str, int] = field(default_factory=dict)  # column -> cells that fell back to the statistic
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    code_columns: dict[str, str] = field(default_factory=dict)  # column -> why its fills are its observed codes

    @property
    def n_filled(self) -> int:
        return int(sum(self.filled.values()))

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values: method, rows in and out, cells filled (in all and per column),
        how each column was filled, fallbacks, seconds, notes and code columns."""
        return {
            "method": self.method, "rows_in": self.n_rows_in, "rows_out": self.n_rows_out,
            "cells_filled": self.n_filled, "filled": dict(self.filled), "how": dict(self.how),
            "fallbacks": dict(self.fallbacks), "seconds": round(self.seconds, 3), "notes": list(self.notes),
            "code_columns": dict(self.code_columns),
        }


def as_frame(X: Any) -> tuple[pd.DataFrame, bool]:
    """``(frame, was_array)``: a DataFrame as is, anything else through ``check_array`` with columns x0, x1, ..."""
    if isinstance(X, pd.DataFrame):
        if X.ndim != 2 or X.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.shape[0] == 0:
            raise DataError("the table is empty (0 rows): there is nothing to learn from or fill")
        if not X.columns.is_unique:
            dup = X.columns[X.columns.duplicated()][0]
            raise DataError(f"column {dup!r} appears more than once; rename the duplicates")
        _refuse_nan_values(X)
        return X, False
    arr = check_array(X, dtype=None, ensure_all_finite="allow-nan", ensure_2d=True, ensure_min_samples=1)
    frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    if arr.dtype == object:
        frame = frame.infer_objects()
    return frame, True


def _refuse_nan_values(frame: pd.DataFrame) -> None:
    """A DataError for a NaN that is a value, not a gap: a pyarrow float column keeps NaN apart from null, so
    ``pandas.isna`` would not fill it and it would poison the column's statistics."""
    for col in frame.columns:
        series = frame[col]
        if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_float_dtype(series.dtype):
            nan = np.flatnonzero(np.isnan(series.to_numpy(dtype=float, na_value=np.nan)) & series.notna().to_numpy())
            if len(nan):
                raise DataError(f"column {col!r} row {frame.index[nan[0]]!r} holds NaN ({len(nan)} such cell(s)), "
                                f"which its {series.dtype} dtype keeps as a value, not a gap", None,
                                f"make NaN a gap first, e.g. X[{col!r}] = X[{col!r}].astype('float64')")


def _numbers(values: pd.Series) -> np.ndarray:
    """The values of a column that is not of a numeric dtype as float64, NaN for a gap or a value that is not a
    number. A date or a period is not one, though ``pandas.to_numeric`` gives a pyarrow date NaN (a value, not a
    gap) and a period its ordinal."""
    if isinstance(values.dtype, pd.PeriodDtype):
        return np.full(len(values), np.nan)
    parsed = pd.to_numeric(values, errors="coerce").where(values.notna())  # NaT: to_numeric says int64 min
    return parsed.to_numpy(dtype=float, na_value=np.nan)


def _looks_numeric(values: pd.Series) -> float:
    """Share of the observed values of an object column that parse as numbers."""
    return float((~np.isnan(_numbers(values))).mean()) if len(values) else 0.0


def infer_kinds(
    frame: pd.DataFrame,
    categorical: tuple[str, ...] | None = None,
    numeric: tuple[str, ...] | None = None,
    text: tuple[str, ...] | None = None,
    max_categories: int = 50,
) -> dict[str, str]:
    """Kind of every column: the declared ones as given, the rest inferred.

    A single name (a string) declares that one column. Inference: a bool column (or one holding only True/False) or a numeric column with at most two distinct values
    (a flag) is categorical; other numeric columns are numeric; an object/string column whose observed values nearly
    all (>= 90%) parse as numbers is numeric (so junk in it is reported, not silently turned into a category; a
    pyarrow date or timestamp and a period are not numbers, a numpy datetime64 is); other columns are categorical
    when they have at most ``max_categories`` distinct values and text otherwise.
    """
    declared: dict[str, str] = {}
    for kind, cols in ((CATEGORICAL, categorical), (NUMERIC, numeric), (TEXT, text)):
        for col in ((cols,) if isinstance(cols, str) else cols or ()):  # one name is one column, not its letters
            if col not in frame.columns:
                raise DataError(f"column {col!r} was declared {kind} but the table has no such column; "
                                f"it has {list(frame.columns)}")
            if col in declared and declared[col] != kind:
                raise DataError(f"column {col!r} was declared both {declared[col]} and {kind}", None,
                                "declare each column as one kind only")
            declared[col] = kind
    kinds: dict[str, str] = {}
    for col in frame.columns:
        if col in declared:
            kinds[col] = declared[col]
            continue
        series = frame[col]
        observed = series.dropna()
        if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.infer_dtype(observed) == "boolean":
            kinds[col] = CATEGORICAL  # (an object column of True/False too: to_numeric would read it as 1/0)
        elif pd.api.types.is_numeric_dtype(series.dtype):
            kinds[col] = CATEGORICAL if observed.nunique() <= 2 and len(observed) > 2 else NUMERIC
        elif len(observed) and _looks_numeric(observed) >= 0.9:
            kinds[col] = NUMERIC
        else:
            kinds[col] = CATEGORICAL if observed.astype(str).nunique() <= max_categories else TEXT
    return kinds


def coerce_numeric(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Numeric columns as float; a value that is not a number raises an error naming the column and row."""
    out = frame
    for col, kind in kinds.items():
        if kind != NUMERIC:
            continue
        series = frame[col]
        if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_complex_dtype(series.dtype):
            raise DataError(f"column {col!r} is declared numeric but holds {series.dtype} values")
        if not pd.api.types.is_numeric_dtype(series.dtype):
            parsed = _numbers(series)
            junk = np.isnan(parsed) & series.notna().to_numpy()
            if junk.any():
                row = junk.nonzero()[0][0]
                raise DataError(
                    f"column {col!r} is numeric but row {frame.index[row]!r} holds {series.iloc[row]!r} "
                    f"({int(junk.sum())} such cell(s)); fix those cells, blank them, or declare the column categorical"
                )
            if out is frame:
                out = frame.copy()
            out[col] = pd.Series(parsed, index=frame.index)
            series = out[col]
        values = series.to_numpy(dtype=float, na_value=np.nan)
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values))[0])
            raise DataError(f"column {col!r} row {frame.index[row]!r} holds an infinite value; use a finite number or blank")
    return out


def describe_columns(frame: pd.DataFrame, kinds: dict[str, str],
                     fills_cells: bool = True) -> dict[str, ColumnInfo]:
    """Statistics of the observed cells of every column; a column with no observed cell is an error (worded for an
    imputer that fills cells, or, with ``fills_cells`` False, for case-wise deletion, which drops rows)."""
    infos: dict[str, ColumnInfo] = {}
    for col in frame.columns:
        kind = kinds[col]
        observed = frame[col].dropna()
        if observed.empty:
            why = "nothing can be learned to fill it" if fills_cells else "case-wise deletion would drop every row"
            raise DataError(f"column {col!r} has no observed value, so {why}; drop the column or supply some values")
        if kind == NUMERIC:
            vals = observed.to_numpy(dtype=float)
            infos[col] = ColumnInfo(
                col, kind, len(vals), mean=float(vals.mean()), low=float(vals.min()), high=float(vals.max()),
                integral=bool(np.all(np.mod(vals, 1) == 0)), mode=float(vals.mean()),
            )
        else:
            counts = observed.value_counts(sort=False)
            counts = counts[counts > 0]  # a categorical dtype also counts its unobserved categories
            # Most frequent first; ties broken by first appearance so the order is deterministic.
            first_seen = {v: i for i, v in reversed(list(enumerate(observed)))}
            order = sorted(counts.index, key=lambda v: (-counts[v], first_seen[v]))
            infos[col] = ColumnInfo(col, kind, len(observed), categories=tuple(order), mode=order[0])
    return infos


@dataclass(frozen=True)
class CodeColumn:
    """A numeric column whose fills are its observed codes (``codes``, ascending), and why (``reason``)."""

    codes: tuple[float, ...]
    reason: str

    def snap(self, values: Sequence[Any]) -> list[float]:
        """Each value replaced by the nearest code (a tie goes to the smaller code)."""
        codes = np.asarray(self.codes, dtype=float)
        x = np.asarray(values, dtype=float)
        upper = np.clip(np.searchsorted(codes, x), 0, len(codes) - 1)
        lower = np.clip(upper - 1, 0, len(codes) - 1)
        nearest = np.where(np.abs(x - codes[lower]) <= np.abs(codes[upper] - x), lower, upper)
        return [float(v) for v in codes[nearest]]


def detect_code_columns(frame: pd.DataFrame, given: pd.DataFrame, kinds: dict[str, str],
                        code_columns: str | Sequence[str] = "auto") -> dict[str, CodeColumn]:
    """The code columns of a table (``frame``: its numeric copy; ``given``: as the caller passed it).

    ``"auto"``: every numeric column (not a date or duration) whose observed values are all whole numbers with at
    most :data:`MAX_CODES` distinct values, each seen twice on average (distinct <= observed / 2: in a 12-row table,
    12 different ages are measurements, not codes). A list: exactly those columns (numeric ones; their codes are
    their distinct observed values). ``()``: none.
    """
    if isinstance(code_columns, str):
        if code_columns != "auto":
            raise ValueError(f"code_columns must be 'auto', a list of column names or () for none, got {code_columns!r}")
    elif not isinstance(code_columns, Sequence) or not all(isinstance(c, str) for c in code_columns):
        raise ValueError(f"code_columns must be 'auto', a list of column names or () for none, got {code_columns!r}")
    out: dict[str, CodeColumn] = {}
    if code_columns != "auto":
        for col in code_columns:
            if col not in frame.columns:
                raise DataError(f"code_columns names {col!r}, which is not a column of the table; "
                                f"it has {list(frame.columns)}")
            if kinds[col] != NUMERIC:
                raise DataError(f"code_columns names {col!r}, a {kinds[col]} column, whose fills are already observed "
                                "values; list numeric columns only")
            codes = tuple(float(v) for v in np.unique(frame[col].dropna().to_numpy(dtype=float)))
            out[col] = CodeColumn(codes, f"declared in code_columns ({len(codes)} distinct observed values)")
        return out
    for col, kind in kinds.items():
        dtype = given[col].dtype
        if kind != NUMERIC or pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            continue
        values = frame[col].dropna().to_numpy(dtype=float)
        codes = np.unique(values)
        if len(codes) and len(codes) <= MAX_CODES and 2 * len(codes) <= len(values) and np.all(np.mod(codes, 1) == 0):
            out[col] = CodeColumn(tuple(float(v) for v in codes),
                                  f"auto: {len(codes)} distinct whole numbers ({codes[0]:g}..{codes[-1]:g}) in "
                                  f"{len(values)} observed cells (<= {MAX_CODES} distinct, each seen twice on average)")
    return out


def check_int_param(owner: str, name: str, value: Any, low: int) -> None:
    """A ValueError naming ``owner.name`` unless ``value`` is an integer (Python or NumPy; not a bool) >= ``low``.
    Imputers call it in ``fit`` (scikit-learn's ``__init__`` stores parameters unchanged)."""
    if not is_integer(value) or value < low:
        raise ValueError(f"{owner}.{name} must be an integer >= {low}, got {value!r}")


class BaseImputer(TransformerMixin, BaseEstimator):
    """Shared plumbing: input checks, column kinds, statistics, and writing only the missing cells.

    Subclasses implement ``_fit(frame)`` (learned state in ``*_`` attributes) and ``_impute(frame, mask, report)``
    returning ``{column: values for the rows where mask[column]}``; numbers returned for a code column
    (``code_columns_``) are snapped to its nearest observed code. ``report_`` describes the last ``transform``.
    """

    method: ClassVar[str] = "base"
    fills_cells: ClassVar[bool] = True  # False for table transforms that drop rows (case-wise deletion)

    categorical: tuple[str, ...] | None
    numeric: tuple[str, ...] | None
    text: tuple[str, ...] | None
    max_categories: int
    code_columns: str | Sequence[str]  # "auto" | column names | () (a subclass without the parameter: "auto")

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X: Any, y: Any = None) -> "BaseImputer":
        """Learn column kinds, statistics and the subclass's model from the observed cells of ``X``."""
        given, _ = as_frame(X)
        check_int_param(type(self).__name__, "max_categories", self.max_categories, 1)
        self.kinds_ = infer_kinds(given, self.categorical, self.numeric, self.text, self.max_categories)
        self.formats_ = {col: CellFormat.of(given[col], kind == NUMERIC) for col, kind in self.kinds_.items()}
        frame = coerce_numeric(given, self.kinds_)
        self.columns_ = describe_columns(frame, self.kinds_, self.fills_cells)
        self.code_columns_ = detect_code_columns(frame, given, self.kinds_, getattr(self, "code_columns", "auto"))
        self.n_features_in_ = frame.shape[1]
        if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self._fit(frame)
        return self

    def transform(self, X: Any) -> Any:
        """A copy of ``X`` with every missing cell filled (written as :func:`recllm.impute.cells.represent` says);
        every observed cell and every column's dtype as given (the models see a numeric copy). Same type as ``X``."""
        check_is_fitted(self, "columns_")
        given, frame, was_array = self._transform_input(X)
        mask = given.isna()
        report = ImputationReport(method=self.method, n_rows_in=len(frame), code_columns=self._code_reasons())
        start = time.perf_counter()
        out = given.copy()
        if mask.to_numpy().any():
            values = self._impute(frame, mask, report)
            for col in frame.columns:
                rows = np.flatnonzero(mask[col].to_numpy())
                if len(rows) == 0:
                    continue
                vals = values[col]
                if len(vals) != len(rows):
                    raise RuntimeError(f"{type(self).__name__} returned {len(vals)} values for {len(rows)} cells of {col!r}")
                if col in self.code_columns_:
                    vals = self._snap_codes(col, vals, report)
                write_cells(out, col, rows, vals, self.formats_[col])
                empty = int(out[col].iloc[rows].isna().sum())
                if empty:  # a NaN fill (a NaN statistic, say) is no fill: never report it as one
                    raise DataError(f"{type(self).__name__} found no value for {empty} missing cell(s) of column "
                                    f"{col!r} (its fill was NaN)", None,
                                    "check the column's observed values, declare its kind, or use another method")
                report.filled[col] = len(rows)
        report.seconds = time.perf_counter() - start
        report.n_rows_out = len(out)
        self.report_ = report
        return out.to_numpy() if was_array else out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.asarray(list(self.columns_), dtype=object)

    def __sklearn_tags__(self):  # noqa: D105 - scikit-learn hook
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

    # ------------------------------------------------------------------ helpers for subclasses
    def _transform_input(self, X: Any) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
        """``(given, numeric, was_array)``: ``X`` as a frame (checked against ``fit``; the caller's own frame, never
        to be written), its copy with numeric columns as floats (what the models read), and whether ``X`` was an
        array."""
        if not isinstance(X, pd.DataFrame):
            arr = np.asarray(X) if not hasattr(X, "shape") else X
            if getattr(arr, "ndim", 2) == 1:
                raise ValueError("Expected 2D array, got 1D array instead. Reshape your data with X.reshape(-1, 1).")
        frame, was_array = as_frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input."
            )
        expected = list(self.columns_)
        if not was_array and list(frame.columns) != expected:
            raise DataError(f"the table's columns {list(frame.columns)} differ from those seen in fit {expected}")
        if was_array:
            frame.columns = expected
        return frame, coerce_numeric(frame, self.kinds_), was_array

    def _code_reasons(self) -> dict[str, str]:
        """``{code column: why}`` for ``report_``."""
        return {col: code.reason for col, code in getattr(self, "code_columns_", {}).items()}

    def _snap_codes(self, col: str, values: Sequence[Any], report: ImputationReport) -> list[float]:
        """``values`` of code column ``col`` snapped to its codes; ``report.how["snapped"]`` counts those moved."""
        snapped = self.code_columns_[col].snap(values)
        moved = int(sum(float(a) != b for a, b in zip(values, snapped)))
        if moved:
            report.how["snapped"] = report.how.get("snapped", 0) + moved
        return snapped

    def _columns_of(self, kind: str) -> list[str]:
        return [c for c, info in self.columns_.items() if info.kind == kind]

    def _fit(self, frame: pd.DataFrame) -> None:
        """Learn the model (default: nothing beyond the column statistics)."""

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        raise NotImplementedError


def statistic_fill(info: ColumnInfo, n: int) -> list[Any]:
    """The column statistic (numeric mean, otherwise the most frequent value) repeated ``n`` times."""
    return [info.mean if info.kind == NUMERIC else info.mode] * n


# The modules of recllm.impute that decide no fit (reading and writing the command line's tables): left out of the
# code hash that keys the cached LLM adapters, answers and GReaT fine-tunes, so fixing them discards none of those.
NOT_FIT_CODE: tuple[str, ...] = ("cli.py", "table_io.py", "demo.py")


def fit_code_version() -> str:
    """sha256 of recllm.impute's source that decides fits and fills (every module but :data:`NOT_FIT_CODE`)."""
    from recllm.utils import package_source_sha256

    return package_source_sha256("recllm.impute", exclude=NOT_FIT_CODE)
