"""LLM-TRSR end to end on a tiny synthetic data set with tiny llamas (mechanics, determinism, injection test)."""

import numpy as np
import pandas as pd
import pytest

from recllm.data import RecDataset, Schema, leave_one_out
from recllm.eval.sampled import SampledCandidates, evaluate_sampled
from recllm.llm.backbone import tiny_causal_lm
from recllm.llm.sft import SFTConfig
from recllm.trsr import prompts
from recllm.trsr.pipeline import (TRSR, TRSRConfig, inject, injection_effect, precomputed_score_fn,
                                  training_cases)
from recllm.trsr.ranker import RankerConfig
from recllm.trsr.segment import SegmentConfig
from recllm.trsr.summarize import SummarizerConfig


def make_dataset(n_users=8, n_items=40, length=9, seed=0):
    rng = np.random.default_rng(seed)
    colours = ["red", "blue"]
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)],
                          "title": [f"{colours[j % 2]} thing {j}" for j in range(n_items)]})
    rows = []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)  # each user likes one colour
        for t, j in enumerate(rng.choice(pool, size=length, replace=False)):
            rows.append((f"u{u}", f"i{j}", 1000 + 10 * t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("toy", inter, items, users, Schema(item_text=("title",)))


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(seed=0)


@pytest.fixture(scope="module")
def other_lm():
    return tiny_causal_lm(seed=1)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(make_dataset())


def config(mode="hierarchical", **kw):
    return TRSRConfig(
        summarizer=SummarizerConfig(mode=mode, max_new_tokens=3, segment=SegmentConfig(block_size=3, item_tokens=8)),
        ranker=RankerConfig(n_recent=2),
        sft=SFTConfig(epochs=1, batch_size=4, learning_rate=1e-3, show_progress=False, bf16=False),
        max_valid_rows=4, **kw)


def test_training_cases_use_train_items_only(split):
    cases = training_cases(split, max_users=5, targets_per_user=2, seed=0)
    assert len(cases) == 10 and len(set(cases.users.tolist())) == 5
    train = split.sequences("train")
    for u, h, t in zip(cases.users, cases.histories, cases.targets):
        seq = train[int(u)]
        assert t in seq and np.array_equal(h, seq[: len(h)]) and seq[len(h)] == t


def test_training_cases_prefer_given_users(split):
    cases = training_cases(split, max_users=3, seed=0, prefer_users=[1, 6])
    assert {1, 6} <= set(cases.users.tolist()) and len(cases) == 3
    assert set(training_cases(split, max_users=2, seed=0, prefer_users=[0, 1, 2]).users.tolist()) <= {0, 1, 2}


def test_fit_rank_and_evaluate(split, lm, tmp_path):
    valid = SampledCandidates.draw(split.dataset, split.eval_cases("valid"), n_negatives=5, seed=0)
    test = SampledCandidates.draw(split.dataset, split.eval_cases("test"), n_negatives=5, seed=0)
    model = TRSR(lm, tiny_causal_lm(seed=1), config(), show_progress=False,
                 output_dir=tmp_path / "run").fit(split, valid=valid)
    assert model.n_train_pairs_ == 2 * 8 and len(model.item_texts_) == 40
    assert set(model.ranker_.valid_scores_) == {0}
    scores = model.rank(test.histories, list(test.candidates))
    assert len(scores) == len(test) and all(s.shape == (6,) for s in scores)
    result = evaluate_sampled(model.score_fn(), test, ks=(1, 3), show_progress=False)
    again = evaluate_sampled(precomputed_score_fn(test, scores), test, ks=(1, 3), show_progress=False)
    for key in result.per_user:
        np.testing.assert_allclose(result.per_user[key], again.per_user[key])
    effect = injection_effect(model, test, scores, seed=0)
    summary = effect.summary()
    assert set(summary) >= {"victim_rank_before", "victim_rank_after", "places_gained"}
    assert np.all((effect.victim_before >= 1) & (effect.victim_before <= 6))
    assert (tmp_path / "run" / "sft" / "config.json").exists()


def test_same_seed_same_pairs(split, lm, other_lm, monkeypatch):
    seen = []

    def fake_fit(self, queries, candidates, labels, valid=None):
        seen.append((list(candidates), list(labels)))
        self.lm_ = self.lm
        return self

    monkeypatch.setattr("recllm.trsr.ranker.LLMRanker.fit", fake_fit)
    for _ in range(2):
        TRSR(lm, other_lm, config(mode="none", inject_fraction=1.0), show_progress=False).fit(split)
    assert seen[0] == seen[1]
    cands, labels = seen[0]
    assert labels == [1, 0] * 8
    negatives = cands[1::2]
    assert all(any(p in c for p in prompts.TRAIN_INJECTIONS) for c in negatives)
    assert not any(prompts.INJECTION in c for c in cands)  # the test attack is held out of training


def test_zero_shot_needs_no_training_and_fine_tuning_needs_two_models(split, lm):
    model = TRSR(lm, lm, config(mode="none", fine_tune=False), show_progress=False).fit(split)
    assert model.n_train_pairs_ == 0
    queries = model.queries([np.array([0, 2, 4])])
    assert queries[0].summary is None and len(queries[0].recent) == 2
    with pytest.raises(ValueError, match="separate CausalLM"):
        TRSR(lm, lm, config(), show_progress=False).fit(split)
    with pytest.raises(RuntimeError, match="not fitted"):
        TRSR(lm, lm).rank([np.array([1])], [[2]])


def test_inject_appends_the_attack():
    assert inject("Nice magazine") == "Nice magazine " + prompts.INJECTION


def test_ranker_learns_the_answer_token_only():
    from recllm.trsr import TRSRConfig

    assert TRSRConfig().sft.append_eos is False  # P(Yes) is read at the answer position; an EOS after it is never scored
