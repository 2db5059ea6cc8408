"""Classification and regression metrics against hand-computed values, and their input checks."""

import math

import numpy as np
import pytest

from recllm.eval import metrics as M

Y_TRUE = [1, 1, 1, 0, 0]
Y_PRED = [1, 0, 0, 1, 0]  # TP=1 FP=1 FN=2 TN=1


def test_binary_classification_hand_computed():
    assert M.accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.4)
    assert M.precision(Y_TRUE, Y_PRED) == pytest.approx(0.5)
    assert M.recall(Y_TRUE, Y_PRED) == pytest.approx(1 / 3)
    assert M.f1(Y_TRUE, Y_PRED) == pytest.approx(0.4)


def test_macro_classification_hand_computed():
    # class 0: P=1/3, R=1/2, F1=0.4; class 1: P=1/2, R=1/3, F1=0.4
    assert M.precision(Y_TRUE, Y_PRED, average="macro") == pytest.approx(5 / 12)
    assert M.recall(Y_TRUE, Y_PRED, average="macro") == pytest.approx(5 / 12)
    assert M.f1(Y_TRUE, Y_PRED, average="macro") == pytest.approx(0.4)
    report = M.classification_report(Y_TRUE, Y_PRED)
    assert report == pytest.approx({"accuracy": 0.4, "precision": 5 / 12, "recall": 5 / 12, "f1": 0.4})


def test_string_labels_macro():
    assert M.f1(["a", "b", "c", "a"], ["a", "b", "b", "a"], average="macro") == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_precision_without_positive_predictions_is_zero():
    assert M.precision([1, 0], [0, 0]) == 0.0


def test_auc_hand_computed():
    assert M.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # ties count one half
    with pytest.raises(ValueError, match="both classes"):
        M.auc([1, 1], [0.2, 0.3])


def test_log_loss_hand_computed():
    assert M.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert np.isfinite(M.log_loss([1, 0], [0.0, 1.0]))  # clipped, not infinite
    with pytest.raises(ValueError, match="probabilities"):
        M.log_loss([1, 0], [2.0, 0.1])


def test_regression_hand_computed():
    t, p = [1.0, 2.0, 3.0], [2.0, 2.0, 5.0]
    assert M.mae(t, p) == pytest.approx(1.0)
    assert M.mse(t, p) == pytest.approx(5 / 3)
    assert M.rmse(t, p) == pytest.approx(math.sqrt(5 / 3))
    assert M.regression_report(t, p) == pytest.approx({"mae": 1.0, "mse": 5 / 3, "rmse": math.sqrt(5 / 3)})


def test_input_errors_are_clear():
    with pytest.raises(ValueError, match="y_pred\\[1\\] is nan"):
        M.mae([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        M.accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="no values"):
        M.rmse([], [])
    with pytest.raises(ValueError, match="average"):
        M.f1([1, 0], [1, 0], average="micro")
    with pytest.raises(ValueError, match="None"):
        M.accuracy(np.array(["a", None], dtype=object), np.array(["a", "b"], dtype=object))
