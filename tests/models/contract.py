"""Contract checks every Recommender must pass, on tiny synthetic data with a planted answer.

Reuse for a new model (in ``tests/models/test_<model>.py``)::

    from tests.models.contract import check_recommender
    def test_contract():
        check_recommender(lambda seed: MyModel(dim=16, max_epochs=20, seed=seed, show_progress=False))

and add a small fast config for it to ``FAST_CONFIGS`` below, so ``test_contract.py`` (parametrised over
``recllm.models.MODELS``) covers it too. ``make_model(seed)`` must build an unfitted model; deterministic models
may ignore the seed.

Planted patterns (the catalogue order is shuffled, so item-index arithmetic cannot find the answer):
- ``"sequence"``: items form chains; every user walks one chain from its first item for a random number of
  steps, so the next item of the chain is the answer. Sequential and co-occurrence models can learn it.
- ``"popularity"``: one "hit" item is the most frequent training item and the test target of most users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import EvalCases, Split, leave_one_out
from recllm.eval.ranking import evaluate_full_ranking
from recllm.models.base import Recommender

PATTERNS = ("sequence", "popularity")


@dataclass(frozen=True)
class ContractSpec:
    """A small, fast configuration of a registered model for the contract test, and the pattern it must find."""

    params: dict[str, Any] = field(default_factory=dict)
    pattern: str = "sequence"
    seeded: bool = True  # pass ``seed=`` to the constructor
    min_top1: float = 0.5

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")

    def factory(self, cls: type[Recommender]) -> Callable[[int], Recommender]:
        if self.seeded:
            return lambda seed: cls(**self.params, seed=seed)
        return lambda seed: cls(**self.params)


_SEQ_TINY = dict(dim=16, n_heads=2, max_len=8, show_progress=False)

# One line per registered model: a configuration that trains in a few seconds on the planted data.
FAST_CONFIGS: dict[str, ContractSpec] = {
    "popularity": ContractSpec(pattern="popularity", seeded=False),
    "itemknn": ContractSpec({"k": 20, "shrinkage": 1.0}, seeded=False),
    "sasrec": ContractSpec({**_SEQ_TINY, "lr": 1e-2, "dropout": 0.0, "max_epochs": 20, "patience": 20}),
    "hstu": ContractSpec({**_SEQ_TINY, "lr": 5e-3, "max_epochs": 8, "patience": 8}),
}


# ---------------------------------------------------------------------------------------------- planted data
def _dataset(name: str, sequences: list[list[str]], catalogue: list[str], seed: int) -> RecDataset:
    rows = [(f"u{u}", item, 1_000 * u + t) for u, seq in enumerate(sequences) for t, item in enumerate(seq)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    order = np.random.default_rng(seed).permutation(len(catalogue))  # index order says nothing about the pattern
    items = pd.DataFrame({"item_id": [catalogue[i] for i in order]})
    items["title"] = "item " + items["item_id"]
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(len(sequences))]})
    return RecDataset(name, inter, items, users, Schema(item_text=("title",)))


def planted_sequence_split(
    n_chains: int = 4, chain_len: int = 16, n_users: int = 240, n_cold: int = 4, seed: int = 0
) -> Split:
    """Users walk chain c from item ``c_0`` for 3..chain_len steps (leave-one-out split); ``n_cold`` items are
    in the catalogue but never interacted with.

    A target is learnable only if some other user's training part covers it, so the two longest lengths are
    not: about 2 / (chain_len - 2) of users (14%) cannot be ranked first by any model."""
    rng = np.random.default_rng(seed)
    sequences = []
    for u in range(n_users):
        chain, length = u % n_chains, int(rng.integers(3, chain_len + 1))
        sequences.append([f"c{chain}_{j}" for j in range(length)])
    catalogue = [f"c{c}_{j}" for c in range(n_chains) for j in range(chain_len)] + [f"cold{j}" for j in range(n_cold)]
    return leave_one_out(_dataset("planted-sequence", sequences, catalogue, seed))


def planted_popularity_split(n_items: int = 40, n_users: int = 200, length: int = 7, seed: int = 0) -> Split:
    """Users consume random distinct items; the hit item is the last one of 70% of users and an early training
    item of the rest, which makes it the most popular training item."""
    rng = np.random.default_rng(seed)
    others = [f"i{j}" for j in range(n_items)]
    sequences = []
    for u in range(n_users):
        seq = [others[j] for j in rng.choice(n_items, size=length - 1, replace=False)]
        if u % 10 < 7:
            seq.append("hit")
        else:
            seq.insert(1, "hit")
        sequences.append(seq)
    return leave_one_out(_dataset("planted-popularity", sequences, [*others, "hit"], seed))


def planted_cases(split: Split, pattern: str) -> EvalCases:
    """The test cases whose target is the planted answer."""
    cases = split.eval_cases("test")
    if pattern == "sequence":
        return cases
    if pattern == "popularity":
        hit = int(split.dataset.item_index(["hit"])[0])
        return cases.subset(np.flatnonzero([hit in t for t in cases.targets]))
    raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")


# ---------------------------------------------------------------------------------------------- the checks
def check_recommender(
    make_model: Callable[[int], Recommender],
    pattern: str = "sequence",
    min_top1: float = 0.5,
    split: Split | None = None,
) -> dict[str, float]:
    """Run every contract check; raise AssertionError naming the failed one. Returns what was measured.

    Checks: sklearn semantics (no learned ``*_`` attribute before fit, ``fit`` returns self, ``n_items_``);
    ``score`` shape (n, n_items), floating and finite, independent of the other users in the batch; the same
    seed gives the same scores; ``recommend`` returns k items, best first, never a seen item with
    ``filter_seen``; the planted item is the top recommendation for at least ``min_top1`` of planted users.
    """
    if split is None:
        split = planted_sequence_split() if pattern == "sequence" else planted_popularity_split()
    cases = planted_cases(split, pattern)
    assert len(cases) > 0, "the planted data produced no test cases"
    n_items = split.dataset.n_items

    model = make_model(0)
    assert isinstance(model, Recommender), f"{type(model).__name__} is not a Recommender"
    learned = [k for k in vars(model) if k.endswith("_") and not k.startswith("_")]
    assert not learned, f"__init__ must only store parameters; it set learned attributes {learned}"
    fitted = model.fit(split)
    assert fitted is model, "fit must return self"
    assert model.n_items_ == n_items, f"n_items_ is {model.n_items_}, the catalogue has {n_items}"

    scores = np.asarray(model.score(cases.users, cases.histories))
    assert scores.shape == (len(cases), n_items), f"score shape {scores.shape}, expected {(len(cases), n_items)}"
    assert np.issubdtype(scores.dtype, np.floating), f"scores must be floating, got {scores.dtype}"
    assert np.isfinite(scores).all(), "scores must be finite (the evaluator masks seen items itself)"
    few = np.array([2, 0, 5])
    alone = np.asarray(model.score(cases.users[few], [cases.histories[i] for i in few]))
    np.testing.assert_allclose(alone, scores[few], rtol=1e-4, atol=1e-5,
                               err_msg="a user's scores must not depend on the other users in the batch")

    again = np.asarray(make_model(0).fit(split).score(cases.users, cases.histories))
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6, err_msg="the same seed must give the same scores")

    k = 5
    top, top_scores = model.recommend(cases.users, cases.histories, k=k, filter_seen=True)
    assert top.shape == (len(cases), k) and top_scores.shape == (len(cases), k), "recommend must return (n, k) arrays"
    assert np.all(np.diff(top_scores, axis=1) <= 0), "recommend must order items best first"
    for row, hist in enumerate(cases.histories):
        seen = set(np.asarray(hist).tolist())
        assert not seen & set(top[row].tolist()), f"user row {row}: recommend returned a seen item with filter_seen"

    best, _ = model.recommend(cases.users, cases.histories, k=1, filter_seen=True)
    targets = [set(np.asarray(t).tolist()) for t in cases.targets]
    top1 = float(np.mean([int(best[i, 0]) in targets[i] for i in range(len(cases))]))
    assert top1 >= min_top1, f"the planted item is the top recommendation for only {top1:.2f} of users (< {min_top1})"

    result = evaluate_full_ranking(model, cases, ks=(1, 10), show_progress=False)
    means = result.mean()
    assert all(0.0 <= v <= 1.0 for v in means.values()), f"metrics out of [0, 1]: {means}"
    return {"top1": top1, **means}
