"""Popularity and ItemKNN against hand-computed scores; the contract itself can fail; validation-only tuning."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recllm.data.dataset import RecDataset
from recllm.data.split import Split
from recllm.eval.tuning import grid_search
from recllm.models import MODELS, ItemKNN, Popularity
from recllm.models.base import Recommender
from recllm.models.itemknn import top_k_per_row
from tests.models.contract import check_recommender, planted_sequence_split


def manual_split(pairs, items=("A", "B", "C", "D")):
    """A split whose train is exactly ``pairs`` (user, item); catalogue ``items`` (D is never interacted with)."""
    inter = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    inter["timestamp"] = np.arange(len(inter), dtype=np.int64)
    users = pd.DataFrame({"user_id": sorted(inter["user_id"].unique())})
    ds = RecDataset("manual", inter, pd.DataFrame({"item_id": list(items)}), users)
    return Split("manual", ds, inter, inter.iloc[:0], inter.iloc[:0])


# u0: {A, B}, u1: {A, B, C}, u2: {A, A}: counts A=3 (distinct users) / 4 (interactions), B=2, C=1, D=0
SPLIT = manual_split([("u0", "A"), ("u0", "B"), ("u1", "A"), ("u1", "B"), ("u1", "C"), ("u2", "A"), ("u2", "A")])
A, B, C, D = 0, 1, 2, 3


def test_registered():
    assert MODELS["popularity"] is Popularity and MODELS["itemknn"] is ItemKNN


def test_popularity_counts():
    model = Popularity().fit(SPLIT)
    scores = model.score(np.array([0, 1]), [np.array([A]), np.array([])])
    assert scores.tolist() == [[4, 2, 1, 0]] * 2
    distinct = Popularity(distinct_users=True).fit(SPLIT).score(np.array([0]), [np.array([A])])
    assert distinct.tolist() == [[3, 2, 1, 0]]
    top, _ = model.recommend(np.array([0]), [np.array([A])], k=2)
    assert top.tolist() == [[B, C]]


def test_itemknn_cosine_hand_computed():
    model = ItemKNN(k=10, shrinkage=0.0).fit(SPLIT)
    s = model.similarity_.toarray()
    # binary users: A={u0,u1,u2}, B={u0,u1}, C={u1}
    assert s[A, B] == pytest.approx(2 / math.sqrt(6)) and s[B, A] == pytest.approx(2 / math.sqrt(6))
    assert s[A, C] == pytest.approx(1 / math.sqrt(3))
    assert s[B, C] == pytest.approx(1 / math.sqrt(2))
    assert np.all(np.diag(s) == 0) and np.all(s[D] == 0) and np.all(s[:, D] == 0)
    scores = model.score(np.array([0]), [np.array([A, B])])
    assert scores[0, C] == pytest.approx(1 / math.sqrt(3) + 1 / math.sqrt(2))


def test_itemknn_shrinkage_and_top_k():
    shrunk = ItemKNN(k=10, shrinkage=10.0).fit(SPLIT).similarity_.toarray()
    assert shrunk[A, B] == pytest.approx(2 / (math.sqrt(6) + 10))
    pruned = ItemKNN(k=1, shrinkage=0.0).fit(SPLIT).similarity_.toarray()
    # each row keeps only its best neighbour: A->B (0.816 > 0.577), B->A (0.816 > 0.707), C->B (0.707 > 0.577)
    assert (pruned > 0).sum(axis=1).tolist() == [1, 1, 1, 0]
    assert pruned[A, B] > 0 and pruned[B, A] > 0 and pruned[C, B] > 0


def test_itemknn_recency_weighting_keeps_latest_occurrence():
    model = ItemKNN(k=10, shrinkage=0.0, recency_decay=0.5).fit(SPLIT)
    # history C, B, A (oldest first): weights 0.25, 0.5, 1
    weights = model.history_weights([np.array([C, B, A])]).toarray()[0]
    assert weights.tolist() == [1.0, 0.5, 0.25, 0.0]
    weights = model.history_weights([np.array([A, C, A, B])]).toarray()[0]  # A last seen one step before the end
    assert weights.tolist() == [0.5, 1.0, 0.25, 0.0]
    scores = model.score(np.array([0]), [np.array([B, A])])
    assert scores[0, C] == pytest.approx(0.5 / math.sqrt(2) + 1 / math.sqrt(3))


def test_top_k_per_row_ties_by_column():
    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.0], [0.1, 0.0, 0.0, 0.0]]))
    out = top_k_per_row(m, 2).toarray()
    assert out.tolist() == [[0.5, 0.9, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("params, field", [
    ({"k": 0}, "k"), ({"k": True}, "k"), ({"k": 2.5}, "k"), ({"shrinkage": -1.0}, "shrinkage"),
    ({"shrinkage": "1"}, "shrinkage"), ({"shrinkage": float("nan")}, "shrinkage"),
    ({"recency_decay": 0.0}, "recency_decay"), ({"recency_decay": 1.5}, "recency_decay"),
    ({"recency_decay": "0.5"}, "recency_decay"),
])
def test_itemknn_bad_params(params, field):
    """fit refuses each bad parameter by name (k=True was k=1; a string shrinkage failed with a bare TypeError)."""
    with pytest.raises(ValueError, match=f"ItemKNN: {field} must be"):
        ItemKNN(**params).fit(SPLIT)
    assert ItemKNN(k=np.int64(3), shrinkage=np.float32(1.0)).fit(SPLIT).k == 3


def test_unfitted_and_bad_history_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        ItemKNN().score(np.array([0]), [np.array([0])])
    with pytest.raises(RuntimeError, match="not fitted"):
        Popularity().score(np.array([0]), [np.array([0])])
    with pytest.raises(ValueError, match="outside"):
        ItemKNN().fit(SPLIT).score(np.array([0]), [np.array([7])])


@pytest.mark.parametrize("decay", [None, 0.8])
def test_itemknn_contract_with_recency(decay):
    check_recommender(lambda seed: ItemKNN(k=20, shrinkage=1.0, recency_decay=decay))


# ---------------------------------------------------------------------------------------------- the contract bites
class Constant(Recommender):
    def fit(self, split):
        self.n_items_ = split.dataset.n_items
        return self

    def score(self, users, histories):
        return np.zeros((len(users), self.n_items_))


class BatchDependent(Constant):
    def score(self, users, histories):
        return np.tile(np.arange(self.n_items_, dtype=float), (len(users), 1)) * len(users)


class Unseeded(Constant):
    def fit(self, split):
        self.n_items_ = split.dataset.n_items
        self.table_ = np.random.default_rng().random(self.n_items_)  # ignores any seed
        return self

    def score(self, users, histories):
        return np.tile(self.table_, (len(users), 1))


def test_popularity_cannot_pass_the_sequence_pattern():
    with pytest.raises(AssertionError, match="planted item"):
        check_recommender(lambda seed: Popularity(), pattern="sequence")


@pytest.mark.parametrize("cls, message", [(Constant, "planted item"), (BatchDependent, "other users"),
                                          (Unseeded, "same seed")])
def test_contract_catches_broken_models(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_recommender(lambda seed: cls())


def test_grid_search_uses_validation_only():
    split = planted_sequence_split()
    calls = []

    class Spy(ItemKNN):
        def score(self, users, histories):
            calls.append(sum(len(h) for h in histories))
            return super().score(users, histories)

    result = grid_search(Spy, split, {"k": [1, 20], "shrinkage": [0.0, 5.0]}, metric="ndcg@10", show_progress=False)
    assert len(result.rows) == 4 and set(result.best_params) == {"k", "shrinkage"}
    assert result.best_score == max(r["ndcg@10"] for r in result.rows)
    valid = split.eval_cases("valid")
    assert set(calls) == {sum(len(h) for h in valid.histories)}  # every call saw validation histories
    with pytest.raises(ValueError, match="metric 'hr@50'"):
        grid_search(ItemKNN, split, {"k": [5]}, metric="hr@50", show_progress=False)
