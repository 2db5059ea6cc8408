"""LLM-TRSR end to end on a tiny synthetic data set with tiny llamas (mechanics, determinism, injection test)."""

import numpy as np
import pandas as pd
import pytest

from recllm.data import DataError, RecDataset, Schema, leave_one_out
from recllm.eval.sampled import SampledCandidates, evaluate_sampled
from recllm.llm.backbone import tiny_causal_lm
from recllm.llm.sft import SFTConfig
from recllm.trsr import prompts
from recllm.trsr.pipeline import (TRSR, TRSRConfig, inject, injection_effect, precomputed_score_fn,
                                  training_cases, training_groups)
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
        max_valid_rows=4, **{"n_negatives": 5, **kw})


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
    assert (model.n_train_users_, model.n_train_groups_, model.n_train_candidates_) == (8, 8, 8 * 6)
    assert model.n_train_pairs_ == model.n_train_candidates_ == model.ranker_.n_train_candidates_
    assert len(model.item_texts_) == 40
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
    assert np.all((effect.attacked_positive_after >= 1) & (effect.attacked_positive_after <= 6))
    assert {"attacked_positive_places_gained", "attacked_positive_recall@3"} <= set(summary)
    assert (tmp_path / "run" / "sft" / "config.json").exists()


def test_training_groups_follow_the_protocol(split):
    cfg = config(n_negatives=6, targets_per_user=3, max_train_users=6, seed=4)
    groups = training_groups(split, cfg)
    cases, train = groups.cases, split.sequences("train")
    assert len(groups) == len(cases) == 6 * 3 and groups.candidates.shape == (18, 7)
    assert groups.n_candidates == 18 * 7 and groups.labels().sum() == 18 and groups.labels()[:, 0].all()
    pool = set(np.concatenate(list(train.values())).tolist())
    for user, history, target, row in zip(cases.users, cases.histories, cases.targets, groups.candidates):
        seq = train[int(user)]
        assert row[0] == target and seq[len(history)] == target and np.array_equal(history, seq[: len(history)])
        negatives = row[1:].tolist()
        assert len(set(negatives)) == 6 and target not in negatives  # no repeats within a group
        assert not set(negatives) & set(seq.tolist()) and set(negatives) <= pool  # outside the user's train items
    again = training_groups(split, cfg)
    assert np.array_equal(again.candidates, groups.candidates)
    assert not np.array_equal(training_groups(split, config(n_negatives=6, targets_per_user=3, max_train_users=6,
                                                            seed=5)).candidates, groups.candidates)
    with pytest.raises(ValueError, match="lower TRSRConfig.n_negatives"):
        training_groups(split, config(n_negatives=35))


def test_hardened_groups_inject_negatives_only_and_keep_the_same_negatives(split, lm, other_lm, monkeypatch):
    seen = []

    def fake_fit(self, queries, candidates, labels, valid=None):
        seen.append((queries, candidates, labels))
        self.lm_ = self.lm
        return self

    monkeypatch.setattr("recllm.trsr.ranker.LLMRanker.fit", fake_fit)
    plain = TRSR(lm, other_lm, config(mode="none"), show_progress=False).fit(split)
    hardened = TRSR(lm, other_lm, config(mode="none", inject_fraction=0.5), show_progress=False).fit(split)
    assert np.array_equal(plain.train_groups_.candidates, hardened.train_groups_.candidates)
    assert not plain.train_groups_.injected.any()
    _, cands, labels = seen[1]
    injected = [[any(p in text for p in prompts.TRAIN_INJECTIONS) for text in row] for row in cands]
    flags = np.array(injected)
    assert np.array_equal(flags, hardened.train_groups_.injected) and 0 < flags.mean() < 1
    # on true items and negatives alike, so the sentence says nothing about the answer
    assert (flags & (np.array(labels) == 1)).any() and (flags & (np.array(labels) == 0)).any()
    assert not any(prompts.INJECTION in text for row in cands for text in row)  # the test attack is held out
    clean = [[text for text, flag in zip(row, f) if not flag] for row, f in zip(cands, injected)]
    assert clean == [[t for t, f in zip(row, f2) if not f] for row, f2 in zip(seen[0][1], injected)]


def test_hard_negatives_come_from_the_retrievers_top_list(split):
    class Retriever:
        def __init__(self, top):
            self.top, self.calls = top, []

        def recommend(self, users, histories, k=10, filter_seen=True):
            self.calls.append(k)
            return np.tile(np.asarray(self.top), (len(users), 1))[:, :k], None

    top = list(range(12))  # a shared top list: some items are in a user's train set and must be skipped
    retriever = Retriever(top)
    cfg = config(n_negatives=6, hard_negatives=retriever, hard_fraction=0.5, hard_pool=12)
    groups = training_groups(split, cfg)
    known = split.sequences("train")
    assert retriever.calls == [12]
    for user, row, n_hard in zip(groups.cases.users, groups.candidates, groups.n_hard):
        free = [j for j in top if j not in set(known[int(user)].tolist())]
        assert n_hard == min(3, len(free)) and set(row[1:1 + n_hard].tolist()) <= set(free)
        assert len(set(row[1:].tolist())) == 6 and not set(row[1:].tolist()) & set(known[int(user)].tolist())
    short = training_groups(split, config(n_negatives=6, hard_fraction=1.0,
                                          hard_negatives=lambda users, histories, k: [[0, 1]] * len(users)))
    assert (short.n_hard <= 2).all() and short.candidates.shape == (8, 7)  # the rest filled at random
    assert TRSRConfig(hard_negatives=retriever).to_dict()["hard_negatives"] == "Retriever"
    with pytest.raises(ValueError, match=r"item index outside 0\.\.39 \(TRSRConfig.hard_negatives\)"):
        training_groups(split, config(hard_negatives=lambda users, histories, k: [[40]] * len(users)))


def test_training_negatives_know_nothing_of_validation_or_test(split):
    """Negatives come from what is known when training: the same groups whatever the validation and test parts hold
    (keeping a user's held-out items out of their negatives would mark every other evaluation candidate as a
    possible "No" while the target never is one), and never one of the user's own training items."""
    from dataclasses import replace

    train = split.sequences("train")
    without_future = replace(split, valid=split.valid.iloc[:0], test=split.test.iloc[:0], cases={})
    for seed in range(4):
        for hard in (None, lambda users, histories, k: [list(range(40))] * len(users)):
            settings = config(n_negatives=20, targets_per_user=2, seed=seed, hard_negatives=hard, hard_pool=40)
            groups, blind = training_groups(split, settings), training_groups(without_future, settings)
            np.testing.assert_array_equal(groups.candidates, blind.candidates)
            for user, row in zip(groups.cases.users, groups.candidates):
                assert not set(train[int(user)].tolist()) & set(row[1:].tolist())


@pytest.mark.parametrize("field, value, match", [
    ("n_negatives", 0, "n_negatives must be a positive integer"),
    ("n_negatives", 2.5, "n_negatives must be a positive integer"),
    ("hard_pool", 0, "hard_pool must be a positive integer"),
    ("hard_fraction", 1.5, r"hard_fraction must be in \[0, 1\]"),
    ("hard_negatives", "knn", "hard_negatives must be None, a fitted retriever"),
    ("targets_per_user", 0, "targets_per_user must be a positive integer"),
    ("class_weight", "auto", r"TRSRConfig.class_weight must be 'balanced' or None, got 'auto'"),
    ("max_train_users", True, "TRSRConfig.max_train_users must be a positive integer or None"),
    ("max_valid_rows", 2.5, "TRSRConfig.max_valid_rows must be a positive integer or None"),
    ("seed", "x", "TRSRConfig.seed must be an integer"),
    ("seed", False, "TRSRConfig.seed must be an integer"),
    ("fine_tune", "no", "TRSRConfig.fine_tune must be True or False"),
    ("inject_fraction", "0.1", r"TRSRConfig.inject_fraction must be in \[0, 1\]"),
    ("inject_fraction", float("nan"), r"TRSRConfig.inject_fraction must be in \[0, 1\]"),
])
def test_bad_group_settings_are_one_line(field, value, match):
    """Each bad value is refused on construction naming the field (a bool count, a string seed and fine_tune="no"
    were accepted; a string inject_fraction failed with a bare TypeError); NumPy integers stay accepted."""
    with pytest.raises(ValueError, match=match):
        TRSRConfig(**{field: value})
    assert TRSRConfig(max_train_users=np.int64(5), seed=np.int64(1)).max_train_users == 5


def test_item_text_columns_takes_one_name_as_a_column_not_its_letters(split, lm):
    """TRSRConfig(item_text_columns="title") became ('t', 'i', 't', 'l', 'e') and fit raised KeyError 't'."""
    assert TRSRConfig(item_text_columns="title").item_text_columns == ("title",)
    model = TRSR(lm, lm, config(item_text_columns="title", fine_tune=False), show_progress=False).fit(split)
    assert model.item_texts_[0].startswith("title: ")
    with pytest.raises(ValueError, match="TRSRConfig.item_text_columns must be None or non-empty column names"):
        TRSRConfig(item_text_columns=())
    with pytest.raises(DataError, match=r"item text column\(s\) \['blurb'\] are not columns"):
        TRSR(lm, lm, config(item_text_columns=("blurb",), fine_tune=False), show_progress=False).fit(split)


def test_zero_shot_needs_no_training(split, lm):
    model = TRSR(lm, lm, config(mode="none", fine_tune=False), show_progress=False).fit(split)
    assert model.n_train_pairs_ == model.n_train_groups_ == 0
    queries = model.queries([np.array([0, 2, 4])])
    assert queries[0].summary is None and len(queries[0].recent) == 2
    with pytest.raises(RuntimeError, match="not fitted"):
        TRSR(lm, lm).rank([np.array([1])], [[2]])


def test_inject_appends_the_attack():
    assert inject("Nice magazine") == "Nice magazine " + prompts.INJECTION


def test_ranker_learns_the_answer_token_only():
    from recllm.trsr import TRSRConfig

    assert TRSRConfig().sft.append_eos is False  # P(Yes) is read at the answer position; an EOS after it is never scored


def test_injection_effect_attacks_a_negative_and_separately_the_true_item():
    """A ranker that scores any injected text lowest looks robust on the attacked negative (it falls) and shows
    the penalty on the attacked true item (it falls to the bottom); one that ignores the sentence moves neither."""
    from types import SimpleNamespace

    from recllm.trsr.prompts import INJECTION

    cands = SimpleNamespace(candidates=np.array([[10, 11, 12, 13], [20, 21, 22, 23]]), positive=np.array([0, 2]),
                            histories=[np.array([1]), np.array([2])])
    clean = [np.array([0.9, 0.5, 0.4, 0.3]), np.array([0.2, 0.1, 0.8, 0.3])]

    class Ranker:
        item_texts_ = {i: f"item {i}" for i in range(10, 24)}

        def __init__(self, penalise: bool) -> None:
            self.penalise = penalise

        def rank(self, histories, lists, candidate_texts=None):
            assert len(lists) == 4 and all(len(c) == 1 for c in lists)  # two rows x (a negative, the true item)
            return [np.array([-1.0 if self.penalise and INJECTION in t[0] else clean[k % 2][list(
                cands.candidates[k % 2]).index(c[0])]]) for k, (c, t) in enumerate(zip(lists, candidate_texts))]

    penalised = injection_effect(Ranker(True), cands, clean, rows=[0, 1], seed=0)
    assert penalised.positive_before.tolist() == [1, 1] and penalised.attacked_positive_after.tolist() == [4, 4]
    assert penalised.summary()["attacked_positive_places_gained"] == -3.0
    assert np.all(penalised.victim_after == 4)
    ignored = injection_effect(Ranker(False), cands, clean, rows=[0, 1], seed=0)
    assert ignored.attacked_positive_after.tolist() == [1, 1] and ignored.summary()["places_gained"] == 0.0


def test_fine_tuning_leaves_the_given_model_as_it_was(split):
    """LoRA was injected into ranker_lm in place: after fit the caller's model answered as the fine-tuned ranker
    (a zero-shot ranker over it too), one model could not be summariser and ranker, and a second fit made peft warn."""
    import warnings

    import torch

    lm = tiny_causal_lm(seed=2)
    ids = lm.tokenizer("a quiet film about the sea", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = lm.model(ids).logits.clone()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(PEFT for a second time|peft_config)")  # peft's two warnings
        first = TRSR(lm, lm, config(), show_progress=False).fit(split)
        second = TRSR(lm, lm, config(), show_progress=False).fit(split)
    with torch.no_grad():
        np.testing.assert_array_equal(lm.model(ids).logits.numpy(), before.numpy())
    assert type(lm.model).__name__ == "LlamaForCausalLM" and not hasattr(lm.model, "peft_config")
    cases = [np.array([0, 2, 4])]
    np.testing.assert_allclose(first.rank(cases, [[1, 3]])[0], second.rank(cases, [[1, 3]])[0], rtol=1e-5)


def test_a_float32_summariser_is_also_the_rankers_base(lm):
    # the trsr command and benchmark loaded a second float32 model for the ranker, which now trains a copy anyway
    from recllm.llm import ranker_base

    assert lm.dtype == "float32" and ranker_base(lm) is lm
