"""Classification and regression metrics (click prediction, imputation) with checked inputs.

Thin wrappers over scikit-learn: the point is one import path, consistent names, and errors that say what is
wrong (mismatched lengths, NaN predictions, a single class for AUC) instead of a silent nan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn import metrics as skm

ArrayLike = np.ndarray | Sequence[float] | Sequence[int] | Sequence[str]
Average = Literal["binary", "macro"]


def _pair(y_true: ArrayLike, y_pred: ArrayLike, numeric: bool, what: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y_true and {what} must be 1-d, got shapes {t.shape} and {p.shape}")
    if t.size != p.size:
        raise ValueError(f"y_true has {t.size} values but {what} has {p.size}; they must be aligned")
    if t.size == 0:
        raise ValueError("no values to score")
    for name, arr in (("y_true", t), (what, p)):
        if numeric or arr.dtype.kind == "f":
            arr_f = arr.astype(np.float64)
            if not np.all(np.isfinite(arr_f)):
                i = int(np.flatnonzero(~np.isfinite(arr_f))[0])
                raise ValueError(f"{name}[{i}] is {arr_f[i]}: fill or drop missing values before scoring")
        elif arr.dtype == object and any(v is None for v in arr):
            raise ValueError(f"{name} holds None: fill or drop missing values before scoring")
    return t, p


def _check_average(average: str) -> None:
    if average not in ("binary", "macro"):
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")


# ---------------------------------------------------------------------------------------------- classification
def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve for binary labels and real-valued scores (ties count one half)."""
    t, s = _pair(y_true, y_score, numeric=True, what="y_score")
    if np.unique(t).size != 2:
        raise ValueError(f"AUC needs both classes in y_true; it holds only {np.unique(t).tolist()}")
    return float(skm.roc_auc_score(t, s))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities ``y_prob`` (clipped to ``[eps, 1 - eps]``)."""
    t, p = _pair(y_true, y_prob, numeric=True, what="y_prob")
    if p.min() < 0 or p.max() > 1:
        raise ValueError("y_prob must hold probabilities in [0, 1]; apply a sigmoid to logits first")
    p = np.clip(p.astype(np.float64), eps, 1 - eps)
    return float(skm.log_loss(t, p, labels=[0, 1]))


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches."""
    t, p = _pair(y_true, y_pred, numeric=False)
    return float(skm.accuracy_score(t, p))


def precision(y_true: ArrayLike, y_pred: ArrayLike, average: Average = "binary", pos_label: int | str = 1) -> float:
    """Precision of the positive class (``binary``) or the unweighted mean over classes (``macro``); 0 if undefined."""
    _check_average(average)
    t, p = _pair(y_true, y_pred, numeric=False)
    return float(skm.precision_score(t, p, average=average, pos_label=pos_label, zero_division=0))


def recall(y_true: ArrayLike, y_pred: ArrayLike, average: Average = "binary", pos_label: int | str = 1) -> float:
    """Recall of the positive class (``binary``) or the unweighted mean over classes (``macro``); 0 if undefined."""
    _check_average(average)
    t, p = _pair(y_true, y_pred, numeric=False)
    return float(skm.recall_score(t, p, average=average, pos_label=pos_label, zero_division=0))


def f1(y_true: ArrayLike, y_pred: ArrayLike, average: Average = "binary", pos_label: int | str = 1) -> float:
    """F1 of the positive class (``binary``) or the unweighted mean of per-class F1 (``macro``); 0 if undefined."""
    _check_average(average)
    t, p = _pair(y_true, y_pred, numeric=False)
    return float(skm.f1_score(t, p, average=average, pos_label=pos_label, zero_division=0))


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, average: Average = "macro") -> dict[str, float]:
    """Accuracy, precision, recall and F1 in one dict (keys ``accuracy``, ``precision``, ``recall``, ``f1``)."""
    return {
        "accuracy": accuracy(y_true, y_pred),
        "precision": precision(y_true, y_pred, average=average),
        "recall": recall(y_true, y_pred, average=average),
        "f1": f1(y_true, y_pred, average=average),
    }


# ---------------------------------------------------------------------------------------------- regression
def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred, numeric=True)
    return float(skm.mean_absolute_error(t, p))


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error."""
    t, p = _pair(y_true, y_pred, numeric=True)
    return float(skm.mean_squared_error(t, p))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(y_true, y_pred))


def regression_report(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """MAE, MSE and RMSE in one dict."""
    return {"mae": mae(y_true, y_pred), "mse": mse(y_true, y_pred), "rmse": rmse(y_true, y_pred)}
