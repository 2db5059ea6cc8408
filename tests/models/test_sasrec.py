"""SASRec: learns a planted next-item rule, losses, windows, determinism, config validation."""

import numpy as np
import pandas as pd
import pytest
import torch

from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import leave_one_out
from recllm.eval.ranking import evaluate_full_ranking
from recllm.models import MODELS
from recllm.models.sasrec import SASRec, SeqConfig, attention_mask, left_pad, sliding_windows


def cyclic_dataset(n_users: int = 40, n_items: int = 20, length: int = 10, seed: int = 0) -> RecDataset:
    """Every user walks the catalogue in order (item i is always followed by item i+1 mod n_items)."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{(s + t) % n_items}", 100 * u + t)
            for u, s in enumerate(rng.integers(n_items, size=n_users)) for t in range(length)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"item {i}" for i in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("cyclic", inter, items, users, Schema(item_text=("title",)))


TINY = dict(dim=16, n_heads=2, max_len=8, max_epochs=25, patience=25, lr=5e-3, show_progress=False)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(cyclic_dataset())


def test_registered():
    assert MODELS["sasrec"] is SASRec


@pytest.mark.parametrize("loss", ["ce", "bce", "sampled"])
def test_learns_planted_next_item(split, loss):
    model = SASRec(loss=loss, n_negatives=8, **TINY).fit(split)
    result = evaluate_full_ranking(model, split.eval_cases("test"), ks=(1, 5), show_progress=False)
    assert result.mean()["hr@5"] > 0.9, result.mean()
    assert model.best_epoch_ >= 1 and len(model.history_) >= model.best_epoch_
    assert model.epoch_seconds_ > 0


def test_same_seed_same_scores(split):
    cases = split.eval_cases("test").subset(np.arange(5))
    a = SASRec(**{**TINY, "max_epochs": 2}).fit(split).score(cases.users, cases.histories)
    b = SASRec(**{**TINY, "max_epochs": 2}).fit(split).score(cases.users, cases.histories)
    c = SASRec(**{**TINY, "max_epochs": 2, "seed": 1}).fit(split).score(cases.users, cases.histories)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sliding_windows_cover_each_transition_once():
    rows = sliding_windows([np.arange(7)], max_len=3)
    pairs = {(int(r[t]), int(r[t + 1])) for r in rows for t in range(len(r) - 1) if r[t] > 0}
    assert pairs == {(i + 1, i + 2) for i in range(6)}
    assert sum(int((r[:-1] > 0).sum()) for r in rows) == 6
    assert sliding_windows([np.arange(1)], max_len=3).shape == (0, 4)


def test_left_pad_keeps_most_recent():
    out = left_pad([np.array([4, 5, 6, 7]), np.array([2])], max_len=3)
    np.testing.assert_array_equal(out, [[6, 7, 8], [0, 0, 3]])


def test_attention_mask_is_causal_and_hides_padding():
    valid = torch.tensor([[False, True, True]])
    allowed = attention_mask(valid)[0, 0]
    assert allowed.tolist() == [[True, False, False], [False, True, False], [False, True, True]]


def test_no_future_leakage(split):
    model = SASRec(**{**TINY, "max_epochs": 1}).fit(split)
    seq = torch.tensor([[0, 3, 4, 5, 6, 7, 8, 9]])
    changed = seq.clone()
    changed[0, -1] = 12
    with torch.no_grad():
        a, b = model.net_(seq), model.net_(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_unfitted_and_bad_config():
    with pytest.raises(RuntimeError, match="not fitted"):
        SASRec().score(np.array([0]), [np.array([1])])
    with pytest.raises(ValueError, match="loss"):
        SASRec(loss="hinge")
    with pytest.raises(ValueError, match="divisible"):
        SeqConfig(dim=10, n_heads=3)
    with pytest.raises(ValueError, match="dropout"):
        SASRec(dropout=1.5)
