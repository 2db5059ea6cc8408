"""DLRM learns planted signals for each head, is seeded, and handles unseen / missing categories."""

import numpy as np
import pandas as pd
import pytest

from recllm.data.dataset import DataError
from recllm.models.dlrm import DLRM


def planted(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """x (dense) and a colour (categorical) that both matter, plus a noise column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue", "grey"], n)
    effect = pd.Series(colour).map({"red": 1.5, "green": -1.5, "blue": 0.5, "grey": -0.5}).to_numpy()
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=n), "colour": colour})
    score = 1.5 * x + effect
    targets = {
        "binary": (score + rng.normal(0, 0.3, n) > 0).astype(int),
        "multiclass": np.digitize(score, [-1.0, 1.0]),  # 3 classes
        "regression": 3.0 + score + rng.normal(0, 0.1, n),
    }
    return frame, targets


FAST = dict(embedding_dim=8, bottom_mlp=(16,), top_mlp=(32,), batch_size=256, max_epochs=40, patience=4,
            learning_rate=3e-3)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_learns_planted_signal(task):
    frame, targets = planted()
    y = targets[task]
    train, test = slice(0, 2500), slice(2500, None)
    model = DLRM(task=task, seed=0, **FAST).fit(frame.iloc[train], y[train])
    pred = model.predict(frame.iloc[test])
    if task == "regression":
        rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
        assert rmse < 0.35 * y.std()
    else:
        accuracy = float(np.mean(pred == y[test]))
        majority = np.bincount(y[train]).max() / len(y[train])
        assert accuracy > 0.85 > majority + 0.2
        proba = model.predict_proba(frame.iloc[test])
        assert proba.shape == (len(pred), len(model.classes_)) and np.allclose(proba.sum(axis=1), 1)
    assert model.best_epoch_ < len(model.history_) and model.n_train_rows_ == 2250


def test_same_seed_same_model_and_other_seed_differs():
    frame, targets = planted(n=600)
    a = DLRM(task="binary", seed=1, **FAST).fit(frame, targets["binary"]).predict_proba(frame)
    b = DLRM(task="binary", seed=1, **FAST).fit(frame, targets["binary"]).predict_proba(frame)
    c = DLRM(task="binary", seed=2, **FAST).fit(frame, targets["binary"]).predict_proba(frame)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_unseen_and_missing_values_use_the_oov_row():
    frame, targets = planted(n=600)
    model = DLRM(task="regression", seed=0, **FAST).fit(frame, targets["regression"])
    odd = frame.head(3).copy()
    odd.loc[0, "colour"] = "ultraviolet"
    odd.loc[1, "colour"] = None
    odd.loc[2, "x"] = np.nan
    pred = model.predict(odd)
    assert np.isfinite(pred).all()
    oov = model._encode(odd)[1][:, 0]
    assert oov[0] == 0 and oov[1] == 0 and oov[2] > 0


def test_explicit_validation_set_and_columns():
    frame, targets = planted(n=800)
    y = targets["multiclass"]
    model = DLRM(task="multiclass", dense=("x",), categorical=("colour",), seed=0, **FAST)
    model.fit(frame.iloc[:600], y[:600], frame.iloc[600:], y[600:])
    assert model.dense_ == ["x"] and model.categorical_ == ["colour"] and model.n_train_rows_ == 600


@pytest.mark.parametrize("params, field", [
    ({"bottom_mlp": (0,)}, "bottom_mlp"), ({"bottom_mlp": (64, -1)}, "bottom_mlp"),
    ({"bottom_mlp": (True,)}, "bottom_mlp"),
    ({"top_mlp": (32.5,)}, "top_mlp"), ({"top_mlp": "64"}, "top_mlp"), ({"top_mlp": 64}, "top_mlp"),
])
def test_bad_layer_widths_are_refused_by_name(params, field):
    """bottom_mlp=(0,) built a zero-width layer (and "64" was read as widths '6', '4'); fit now refuses them."""
    frame, targets = planted(n=100)
    with pytest.raises(ValueError, match=f"{field} must be a tuple of positive layer widths"):
        DLRM(**params).fit(frame, targets["binary"])


def test_errors():
    frame, targets = planted(n=100)
    with pytest.raises(ValueError, match="task"):
        DLRM(task="ranking").fit(frame, targets["binary"])
    with pytest.raises(DataError, match="two classes"):
        DLRM(task="binary").fit(frame, np.zeros(100, dtype=int))
    with pytest.raises(DataError, match="not in the table"):
        DLRM(dense=("nope",)).fit(frame, targets["binary"])
    model = DLRM(task="binary", max_epochs=1).fit(frame, targets["binary"])
    with pytest.raises(DataError, match="lacks DLRM feature"):
        model.predict(frame.drop(columns=["colour"]))
    with pytest.raises(RuntimeError, match="not fitted"):
        DLRM().predict(frame)
    with pytest.raises(AttributeError, match="classification"):
        DLRM(task="regression", max_epochs=1).fit(frame, targets["regression"]).predict_proba(frame)


def test_non_finite_or_text_dense_values_are_refused_at_fit_and_predict():
    """An infinity in a dense column made every probability NaN without a word; text at fit became a silent gap."""
    frame, targets = planted(n=100)
    with pytest.raises(DataError, match=r"dense feature 'x' row 3 holds inf"):
        DLRM(max_epochs=1).fit(frame.assign(x=frame["x"].where(frame.index != 3, np.inf)), targets["binary"])
    with pytest.raises(DataError, match=r"dense feature 'x' row 5 holds 'abc'"):
        DLRM(dense=("x",), categorical=("colour",), max_epochs=1).fit(
            frame.assign(x=frame["x"].astype(object).where(frame.index != 5, "abc")), targets["binary"])
    with pytest.raises(DataError, match="y holds an infinite value at row 7"):
        DLRM(task="regression", max_epochs=1).fit(frame, np.where(np.arange(100) == 7, np.inf, targets["regression"]))
    model = DLRM(max_epochs=1).fit(frame, targets["binary"])
    with pytest.raises(DataError, match=r"dense feature 'x' row 0 holds -inf"):
        model.predict_proba(frame.assign(x=-np.inf))
