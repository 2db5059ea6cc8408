"""The sequence trainer's early stopping ranks validation cases among the split's validation candidates (a
cold-start split's valid-new items), else the full catalogue as before; SeqConfig.valid_candidates."""

import numpy as np
import pandas as pd
import pytest

import recllm.eval.ranking as ranking
from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import cold_start_split, leave_one_out, temporal_split
from recllm.models.sasrec import SASRec, SeqConfig

TINY = dict(dim=16, n_heads=2, max_len=8, max_epochs=2, patience=5, lr=5e-3, show_progress=False)


def growing(n_users: int = 60, n_items: int = 60, per_user: int = 8, seed: int = 0) -> RecDataset:
    """Items are released over time (item i at time 100 i); each user meets items already released."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for t in np.sort(rng.choice(100 * n_items, size=per_user, replace=False)):
            rows.append((f"u{u}", f"i{rng.integers(t // 100 + 1)}", int(t)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    return RecDataset("growing", frame, items, pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]}), Schema())


@pytest.fixture(scope="module")
def cold():
    split = cold_start_split(growing(), min_test_users=1)
    assert len(split.eval_cases("valid")) > 0 and 0 < len(split.candidates("valid")) < split.dataset.n_items
    return split


def recording(monkeypatch) -> list:
    """Patch the harness so every validation call records the candidates it was given."""
    seen: list = []
    real = ranking.evaluate_full_ranking

    def spy(model, cases, *args, **kwargs):
        seen.append(kwargs.get("candidates"))
        return real(model, cases, *args, **kwargs)

    monkeypatch.setattr(ranking, "evaluate_full_ranking", spy)
    return seen


def test_cold_start_validation_ranks_among_valid_new_items(cold, monkeypatch):
    seen = recording(monkeypatch)
    model = SASRec(**TINY).fit(cold)
    assert len(seen) == TINY["max_epochs"]
    for got in seen:
        np.testing.assert_array_equal(got, cold.candidates("valid"))
    # one epoch: the kept model is the validated one, so its recorded metric is the among-new-items NDCG@10
    one = SASRec(**{**TINY, "max_epochs": 1}).fit(cold)
    among = ranking.evaluate_full_ranking(one, cold.eval_cases("valid"), ks=(10,), show_progress=False,
                                          candidates=cold.candidates("valid"))
    assert one.history_[0]["valid_ndcg@10"] == pytest.approx(float(np.mean(among.per_user["ndcg@10"])))
    assert model.best_epoch_ >= 1


def test_valid_candidates_all_keeps_the_full_catalogue(cold, monkeypatch):
    seen = recording(monkeypatch)
    SASRec(valid_candidates="all", **TINY).fit(cold)
    assert seen == [None] * TINY["max_epochs"]


@pytest.mark.parametrize("make", [leave_one_out, lambda ds: temporal_split(ds, min_test_users=1)])
def test_other_splits_validate_as_before(make, monkeypatch):
    split = make(growing())
    seen = recording(monkeypatch)
    default = SASRec(**TINY).fit(split)
    assert seen == [None] * TINY["max_epochs"]
    full = SASRec(valid_candidates="all", **TINY).fit(split)
    assert [r["valid_ndcg@10"] for r in default.history_] == [r["valid_ndcg@10"] for r in full.history_]


def test_valid_candidates_is_validated():
    assert SeqConfig().valid_candidates == "split"
    with pytest.raises(ValueError, match="valid_candidates must be one of"):
        SeqConfig(valid_candidates="new")


def test_without_validation_cases_the_history_holds_no_made_up_figure_and_the_last_epoch_is_kept(cold, monkeypatch):
    """A split with no validation case (e.g. a small cold-start split) trains to the epoch cap; the history then has
    no 'valid_ndcg@10' (it held the epoch number, which a report read as NDCG)."""
    real = type(cold).eval_cases
    monkeypatch.setattr(type(cold), "eval_cases", lambda self, stage: real(self, stage).subset(np.array([], dtype=int))
                        if stage == "valid" else real(self, stage))
    model = SASRec(SeqConfig(**{**TINY, "max_epochs": 3})).fit(cold)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3]
    assert all("valid_ndcg@10" not in r for r in model.history_) and model.best_epoch_ == 3
