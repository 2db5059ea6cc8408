"""The classic imputers the paper compares against: case-wise deletion, zero, mean/mode, KNN and MICE.

KNN and MICE work on an encoded copy of the table: numeric columns standardised, each categorical column one-hot
encoded (a missing cell is a block of NaN). KNN is scikit-learn's ``KNNImputer``; a categorical cell is decoded as
the category with the largest neighbour vote. MICE is a chained-equations loop with a scikit-learn regressor per
numeric column and a classifier per categorical column (see :class:`MICEImputer` for why not ``IterativeImputer``).
Either way a categorical answer is always a category seen in ``fit``; nothing is left as a fractional code. Text
columns (too many distinct values to one-hot) are not modelled by the classic imputers: they get the most frequent
value. Every imputer writes only observed codes into a code column (a 1-5 rating; see :mod:`recllm.impute.base`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import KNNImputer

from recllm.data.dataset import DataError
from recllm.impute.base import (
    CATEGORICAL, NUMERIC, TEXT, BaseImputer, ColumnInfo, ImputationReport, check_int_param, statistic_fill,
)
from recllm.impute.cells import is_number
from recllm.utils import is_finite_number


class DeletionImputer(BaseImputer):
    """Case-wise (list-wise) deletion: drop every row that has a missing cell.

    This is a *table transform*, not a cell filler: ``transform`` returns fewer rows (the original index is kept so
    callers can tell which rows survived). A downstream model must therefore be trained on the surviving rows and
    must handle missing features itself at prediction time (``recllm.models.dlrm.DLRM`` maps them to its
    out-of-vocabulary row / the training mean). A table with no complete row is an error.
    """

    method = "deletion"
    fills_cells = False

    def __init__(self, categorical: tuple[str, ...] | None = None, numeric: tuple[str, ...] | None = None,
                 text: tuple[str, ...] | None = None, max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _fit(self, frame: pd.DataFrame) -> None:
        if not frame.notna().all(axis=1).any():
            raise DataError("case-wise deletion: no row of the table is complete, so every row would be dropped")

    def transform(self, X: Any) -> Any:
        """The complete rows of ``X`` (original index kept); ``report_.n_rows_out`` says how many survived."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "columns_")
        given, frame, was_array = self._transform_input(X)  # (the numeric copy checks the numeric columns)
        keep = given.notna().all(axis=1).to_numpy()
        if not keep.any():
            raise DataError("case-wise deletion: no row of the table is complete, so every row would be dropped")
        out = given.loc[keep].copy()  # the caller's cells, untouched
        self.report_ = ImputationReport(
            method=self.method, n_rows_in=len(frame), n_rows_out=len(out), how={"dropped_rows": int((~keep).sum())},
            notes=[f"dropped {int((~keep).sum())} of {len(frame)} rows that had a missing cell"],
            code_columns=self._code_reasons(),
        )
        return out.to_numpy() if was_array else out


class ZeroImputer(BaseImputer):
    """Zero imputation: numeric cells get ``fill_value`` (0); categorical/text cells get a ``missing_label`` category.

    A categorical column coded with numbers (a 0/1 flag) gets ``fill_value`` too, which is literally "fill zeros"
    and keeps the column numeric; a column of booleans gets ``bool(fill_value)`` (False), which its dtype can hold.
    A code column (:func:`recllm.impute.base.detect_code_columns`) gets the observed code nearest ``fill_value``.
    """

    method = "zero"

    def __init__(self, fill_value: float = 0.0, missing_label: str = "missing", categorical: tuple[str, ...] | None = None,
                 numeric: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.fill_value = fill_value
        self.missing_label = missing_label
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _fit(self, frame: pd.DataFrame) -> None:
        if not is_finite_number(self.fill_value):
            raise ValueError(f"ZeroImputer.fill_value must be a finite number such as 0, got {self.fill_value!r}")

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, info in self.columns_.items():
            n = int(mask[col].sum())
            if n:
                numbers = info.kind == NUMERIC or all(is_number(v) for v in info.categories)
                flags = info.kind != NUMERIC and all(isinstance(v, (bool, np.bool_)) for v in info.categories)
                value = float(self.fill_value) if numbers else bool(self.fill_value) if flags else self.missing_label
                out[col] = [value] * n
                report.how["constant"] = report.how.get("constant", 0) + n
        return out


class MeanModeImputer(BaseImputer):
    """Fill numeric cells with the column mean (or median) and the others with the most frequent value."""

    method = "mean"

    def __init__(self, strategy: str = "mean", categorical: tuple[str, ...] | None = None,
                 numeric: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.strategy = strategy
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _fit(self, frame: pd.DataFrame) -> None:
        if self.strategy not in ("mean", "median"):
            raise ValueError(f"strategy must be 'mean' or 'median', got {self.strategy!r}")
        self.statistics_ = {
            col: (float(frame[col].median()) if self.strategy == "median" else info.mean) if info.kind == NUMERIC
            else info.mode
            for col, info in self.columns_.items()
        }

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, info in self.columns_.items():
            n = int(mask[col].sum())
            if n:
                out[col] = [self.statistics_[col]] * n
                key = self.strategy if info.kind == NUMERIC else "mode"
                report.how[key] = report.how.get(key, 0) + n
        return out


class TableEncoder:
    """Numeric columns standardised, categorical columns one-hot (missing -> NaN block); text columns left out."""

    def __init__(self, columns: dict[str, ColumnInfo]) -> None:
        self.columns = columns
        self.blocks: list[tuple[str, int, int]] = []  # (column, start, stop) in the encoded matrix
        start = 0
        for col, info in columns.items():
            width = 1 if info.kind == NUMERIC else len(info.categories) if info.kind == CATEGORICAL else 0
            if width:
                self.blocks.append((col, start, start + width))
                start += width
        self.width = start
        self.scale: dict[str, tuple[float, float]] = {}  # numeric column -> (mean, std), set by fit_stats

    def fit_stats(self, frame: pd.DataFrame) -> "TableEncoder":
        """Learn the standardisation of the numeric columns from their observed cells."""
        for col, info in self.columns.items():
            if info.kind == NUMERIC:
                std = float(frame[col].astype(float).std(ddof=0))
                self.scale[col] = (info.mean, std if std > 0 else 1.0)
        return self

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        mat = np.zeros((len(frame), self.width), dtype=float)
        for col, start, stop in self.blocks:
            info = self.columns[col]
            series = frame[col]
            missing = series.isna().to_numpy()
            if info.kind == NUMERIC:
                mean, std = self.scale[col]
                mat[:, start] = (series.to_numpy(dtype=float, na_value=np.nan) - mean) / std
            else:
                index = {v: j for j, v in enumerate(info.categories)}
                codes = np.array([index.get(v, -1) if not m else -1 for v, m in zip(series.tolist(), missing)])
                known = codes >= 0
                mat[np.flatnonzero(known), start + codes[known]] = 1.0  # unseen categories: all-zero block
                mat[missing, start:stop] = np.nan
        return mat

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low = np.zeros(self.width)
        high = np.ones(self.width)
        for col, start, _ in self.blocks:
            info = self.columns[col]
            if info.kind == NUMERIC:
                mean, std = self.scale[col]
                if info.high > info.low:  # decode() clips to the observed range in any case
                    low[start], high[start] = (info.low - mean) / std, (info.high - mean) / std
                else:
                    low[start], high[start] = -np.inf, np.inf
        return low, high

    def decode(self, mat: np.ndarray, col: str, rows: np.ndarray) -> list[Any]:
        """Values of ``col`` at ``rows`` from an imputed matrix: unscaled numbers or the argmax category."""
        info = self.columns[col]
        _, start, stop = next(b for b in self.blocks if b[0] == col)
        if info.kind == NUMERIC:
            mean, std = self.scale[col]
            return list(np.clip(mat[rows, start] * std + mean, info.low, info.high))
        # Categories are ordered most frequent first, so argmax breaks ties towards the commoner category.
        best = np.argmax(mat[np.ix_(rows, np.arange(start, stop))], axis=1)
        return [info.categories[j] for j in best]


class _EncodedImputer(BaseImputer):
    """Shared by KNN and MICE: model the encoded table, decode the filled cells, most frequent value for text."""

    def _fit_encoded(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def _fill_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _fit(self, frame: pd.DataFrame) -> None:
        self.encoder_ = TableEncoder(self.columns_).fit_stats(frame)
        if self.encoder_.width:
            self._fit_encoded(frame)

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        out: dict[str, Any] = {}
        filled = None
        if self.encoder_.width and any(mask[c].any() for c, _, _ in self.encoder_.blocks):
            filled = self._fill_encoded(frame)
        for col, info in self.columns_.items():
            rows = np.flatnonzero(mask[col].to_numpy())
            if not len(rows):
                continue
            if info.kind == TEXT or filled is None:
                out[col] = statistic_fill(info, len(rows))
                report.how["mode"] = report.how.get("mode", 0) + len(rows)
            else:
                out[col] = self.encoder_.decode(filled, col, rows)
                report.how[self.method] = report.how.get(self.method, 0) + len(rows)
        return out


class KNNTableImputer(_EncodedImputer):
    """scikit-learn ``KNNImputer`` on the encoded table (nan-Euclidean distance over observed features)."""

    method = "knn"

    def __init__(self, n_neighbors: int = 5, weights: str = "uniform", categorical: tuple[str, ...] | None = None,
                 numeric: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _fit(self, frame: pd.DataFrame) -> None:
        check_int_param("KNNTableImputer", "n_neighbors", self.n_neighbors, 1)
        super()._fit(frame)

    def _fit_encoded(self, frame: pd.DataFrame) -> None:
        self.imputer_ = KNNImputer(n_neighbors=self.n_neighbors, weights=self.weights, keep_empty_features=True)
        self.imputer_.fit(self.encoder_.encode(frame))

    def _fill_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        return self.imputer_.transform(self.encoder_.encode(frame))


class MICEImputer(_EncodedImputer):
    """Multivariate imputation by chained equations over the encoded table.

    Every column is filled first with its mean / mode; then, for ``max_iter`` rounds, each column is re-predicted
    from all the *other* columns' blocks: numeric columns by a regressor (``BayesianRidge`` unless ``estimator`` is
    given), categorical columns by a classifier (multinomial ``LogisticRegression``) whose answer is always a category
    seen in ``fit``. The fitted models of every round are kept and replayed by ``transform`` (as scikit-learn's
    ``IterativeImputer`` does). Why not ``IterativeImputer`` on one-hot columns: it regresses each indicator on its
    sibling indicators, which are missing in exactly the same rows, and the chain settles on the block means (on a
    planted table it did no better than the mode); predicting a block from the other blocks only avoids that.
    """

    method = "mice"

    def __init__(self, max_iter: int = 5, estimator: Any = None, classifier: Any = None, seed: int = 0,
                 categorical: tuple[str, ...] | None = None, numeric: tuple[str, ...] | None = None,
                 text: tuple[str, ...] | None = None, max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.max_iter = max_iter
        self.estimator = estimator
        self.classifier = classifier
        self.seed = seed
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _model(self, kind: str) -> Any:
        from sklearn.base import clone
        from sklearn.linear_model import BayesianRidge, LogisticRegression

        if kind == NUMERIC:
            return clone(self.estimator) if self.estimator is not None else BayesianRidge()
        if self.classifier is not None:
            return clone(self.classifier)
        return LogisticRegression(C=1.0, max_iter=300, random_state=self.seed)

    def _initial(self, frame: pd.DataFrame) -> np.ndarray:
        mat = self.encoder_.encode(frame)
        for col, start, stop in self.encoder_.blocks:
            rows = np.isnan(mat[:, start])
            if rows.any():
                info = self.columns_[col]
                mat[rows, start:stop] = 0.0 if info.kind == NUMERIC else np.eye(stop - start)[0]  # mean / mode
        return mat

    def _predict_block(self, model: Any, mat: np.ndarray, col: str, rows: np.ndarray) -> None:
        _, start, stop = next(b for b in self.encoder_.blocks if b[0] == col)
        others = np.r_[0:start, stop:self.encoder_.width]
        if self.columns_[col].kind == NUMERIC:
            low, high = self.encoder_.bounds()
            mat[rows, start] = np.clip(model.predict(mat[np.ix_(rows, others)]), low[start], high[start])
        else:
            classes = model.classes_ if hasattr(model, "classes_") else np.arange(stop - start)
            pred = np.asarray(model.predict(mat[np.ix_(rows, others)])) if len(classes) > 1 else np.full(len(rows), classes[0])
            mat[rows, start:stop] = 0.0
            mat[rows, start + pred.astype(int)] = 1.0

    def _fit(self, frame: pd.DataFrame) -> None:
        check_int_param("MICEImputer", "max_iter", self.max_iter, 1)
        super()._fit(frame)

    def _fit_encoded(self, frame: pd.DataFrame) -> None:
        self.sequence_: list[tuple[str, Any]] = []  # (column, fitted model or None) in replay order
        missing = np.isnan(self.encoder_.encode(frame))
        mat = self._initial(frame)
        order = sorted(self.encoder_.blocks, key=lambda b: (missing[:, b[1]].sum(), b[1]))  # fewest gaps first
        for _ in range(self.max_iter):
            for col, start, stop in order:
                observed = ~missing[:, start]
                others = np.r_[0:start, stop:self.encoder_.width]
                info = self.columns_[col]
                target = mat[observed, start] if info.kind == NUMERIC else np.argmax(mat[observed, start:stop], axis=1)
                model = None
                if others.size and (info.kind == NUMERIC or np.unique(target).size > 1):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        warnings.filterwarnings("ignore", message="The number of unique classes")
                        model = self._model(info.kind).fit(mat[np.ix_(observed, others)], target)
                self.sequence_.append((col, model))
                rows = np.flatnonzero(~observed)
                if model is not None and rows.size:
                    self._predict_block(model, mat, col, rows)
        self.n_iter_ = self.max_iter

    def _fill_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        missing = np.isnan(self.encoder_.encode(frame))
        mat = self._initial(frame)
        for col, model in self.sequence_:
            _, start, _ = next(b for b in self.encoder_.blocks if b[0] == col)
            rows = np.flatnonzero(missing[:, start])
            if model is not None and rows.size:
                self._predict_block(model, mat, col, rows)
        return mat
