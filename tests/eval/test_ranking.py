"""Full-ranking metrics against hand-computed values, a brute-force reference, ties and bad input."""

import math

import numpy as np
import pytest

from recllm.data.split import EvalCases
from recllm.eval.ranking import evaluate_full_ranking

L2 = math.log2


def cases(histories, targets):
    return EvalCases(np.arange(len(targets)), [np.asarray(h, dtype=np.int64) for h in histories],
                     [np.asarray(t, dtype=np.int64) for t in targets])


def test_single_target_hand_computed(fixed_scores):
    model = fixed_scores([[0.1, 0.5, 0.3, 0.9, 0.2], [0.1, 0.5, 0.3, 0.9, 0.2]])
    # user 0: item 3 (0.9) is history, so target 1 ranks first; user 1: no history, target 1 ranks second
    res = evaluate_full_ranking(model, cases([[3], []], [[1], [1]]), ks=(1, 10), show_progress=False)
    assert res.per_user["hr@1"].tolist() == [1.0, 0.0]
    assert res.per_user["ndcg@10"] == pytest.approx([1.0, 1 / L2(3)])
    assert res.per_user["mrr@10"] == pytest.approx([1.0, 0.5])
    assert res.per_user["recall@1"].tolist() == [1.0, 0.0]
    assert res.first_rank.tolist() == [1, 2]
    assert res.n_candidates == 5


def test_several_targets_hand_computed(fixed_scores):
    model = fixed_scores([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4]])
    res = evaluate_full_ranking(model, cases([[]], [[4, 1]]), ks=(1, 3, 5), show_progress=False)  # ranks 2 and 5
    idcg2 = 1 + 1 / L2(3)
    assert res.per_user["hr@1"][0] == 0 and res.per_user["hr@3"][0] == 1
    assert res.per_user["recall@3"][0] == pytest.approx(0.5)
    assert res.per_user["recall@5"][0] == pytest.approx(1.0)
    assert res.per_user["ndcg@3"][0] == pytest.approx((1 / L2(3)) / idcg2)
    assert res.per_user["ndcg@5"][0] == pytest.approx((1 / L2(3) + 1 / L2(6)) / idcg2)
    assert res.per_user["mrr@3"][0] == pytest.approx(0.5)
    assert res.per_user["mrr@1"][0] == 0


def test_ideal_dcg_is_capped_at_k(fixed_scores):
    model = fixed_scores([[0.9, 0.8, 0.7, 0.1]])
    res = evaluate_full_ranking(model, cases([[]], [[0, 1, 2]]), ks=(2,), show_progress=False)
    assert res.per_user["ndcg@2"][0] == pytest.approx(1.0)  # 3 targets, only 2 slots: perfect
    assert res.per_user["recall@2"][0] == pytest.approx(2 / 3)


def test_constant_scorer_ranks_targets_last(fixed_scores):
    n_items = 100
    model = fixed_scores(np.zeros((3, n_items)))
    res = evaluate_full_ranking(model, cases([[0, 1, 2], [], [5]], [[7], [8], [5]]), ks=(10, 50), show_progress=False)
    # pessimistic ties: each target behind all 97, 100 unseen candidates; user 2's target is in the history: masked,
    # ranked past the catalogue
    assert res.first_rank.tolist() == [97, 100, 101]
    assert all(v.sum() == 0 for v in res.per_user.values())


def test_ties_with_non_targets_count_against_the_target(fixed_scores):
    model = fixed_scores([[1.0, 1.0, 0.5]])
    res = evaluate_full_ranking(model, cases([[]], [[1]]), ks=(1,), show_progress=False)
    assert res.first_rank.tolist() == [2]


def test_ties_among_targets_do_not_hurt(fixed_scores):
    model = fixed_scores([[1.0, 1.0, 0.0, 0.0]])
    res = evaluate_full_ranking(model, cases([[]], [[0, 1]]), ks=(2,), show_progress=False)
    assert res.per_user["ndcg@2"][0] == pytest.approx(1.0)


def test_a_target_in_the_history_is_masked_like_every_history_item(fixed_scores):
    """Unmasking it alone would point at it: here the model scores it highest, yet no model can hit it, and the
    user's other target ranks as if it were gone."""
    model = fixed_scores([[0.1, 0.9, 0.5, 0.3], [0.1, 0.9, 0.5, 0.3]])
    res = evaluate_full_ranking(model, cases([[1, 2], [1, 2]], [[1], [1, 3]]), ks=(1, 2), show_progress=False)
    assert res.per_user["hr@2"].tolist() == [0.0, 1.0]
    assert res.per_user["recall@2"].tolist() == [0.0, 0.5]
    assert res.first_rank.tolist()[1] == 1  # item 3 first among the unseen items 0 and 3
    whole = evaluate_full_ranking(model, cases([[1, 2]], [[1]]), ks=(4, 10), show_progress=False)
    assert whole.per_user["hr@4"].tolist() == [0.0] and whole.per_user["hr@10"].tolist() == [0.0]  # K >= n_items


def _brute_force(table, histories, targets, k):
    """Reference: build each user's candidate list, sort with targets after equal non-targets."""
    out = {"hr": [], "ndcg": [], "recall": [], "mrr": []}
    for row, (hist, tgt) in enumerate(zip(histories, targets)):
        tgt = set(int(t) for t in tgt)
        cands = [i for i in range(table.shape[1]) if i not in set(hist)]  # a target in the history: no hit
        # descending score; on ties non-targets first (pessimistic)
        cands.sort(key=lambda i: (-table[row, i], i in tgt))
        ranks = [pos + 1 for pos, i in enumerate(cands) if i in tgt] or [table.shape[1] + 1]
        hits = [r for r in ranks if r <= k]
        idcg = sum(1 / L2(j + 2) for j in range(min(len(tgt), k)))
        out["hr"].append(float(bool(hits)))
        out["recall"].append(len(hits) / len(tgt))
        out["ndcg"].append(sum(1 / L2(r + 1) for r in hits) / idcg)
        out["mrr"].append(1 / min(ranks) if min(ranks) <= k else 0.0)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_with_ties_and_batches(fixed_scores, seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 23, 40
    table = rng.integers(0, 6, size=(n_users, n_items)).astype(float)  # coarse scores: many ties
    histories = [rng.choice(n_items, size=rng.integers(0, 10), replace=False) for _ in range(n_users)]
    targets = [rng.choice(n_items, size=rng.integers(1, 5), replace=False) for _ in range(n_users)]
    ref = _brute_force(table, histories, targets, 5)
    for batch_size in (1, 7, 256):
        res = evaluate_full_ranking(fixed_scores(table), cases(histories, targets), ks=(5,), batch_size=batch_size,
                                    show_progress=False)
        for name in ref:
            np.testing.assert_allclose(res.per_user[f"{name}@5"], ref[name], err_msg=f"{name} batch {batch_size}")


def test_batches_bound_the_score_calls(fixed_scores):
    model = fixed_scores(np.random.default_rng(0).random((10, 8)))
    evaluate_full_ranking(model, cases([[0]] * 10, [[1]] * 10), batch_size=4, show_progress=False)
    assert model.calls_ == [4, 4, 2]


def test_summary_has_bootstrap_intervals(fixed_scores):
    rng = np.random.default_rng(0)
    table = rng.random((200, 30))
    targets = [[int(t)] for t in rng.integers(0, 30, 200)]
    res = evaluate_full_ranking(fixed_scores(table), cases([[]] * 200, targets), ks=(5, 10), show_progress=False)
    summary = res.summary(seed=0)
    assert set(summary) == {f"{m}@{k}" for m in ("hr", "ndcg", "recall", "mrr") for k in (5, 10)}
    mean, low, high = summary["hr@10"]
    assert low < mean < high and mean == pytest.approx(res.per_user["hr@10"].mean())
    assert res.summary(seed=0) == summary


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_an_error(fixed_scores, bad):
    table = np.zeros((2, 4))
    table[1, 2] = bad
    with pytest.raises(ValueError, match="non-finite score .* user 1, column 2"):
        evaluate_full_ranking(fixed_scores(table), cases([[], []], [[0], [0]]), show_progress=False)


def test_bad_inputs_are_named(fixed_scores):
    model = fixed_scores(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="outside the catalogue"):
        evaluate_full_ranking(model, cases([[], []], [[0], [9]]), show_progress=False)
    with pytest.raises(ValueError, match="no target"):
        evaluate_full_ranking(model, cases([[], []], [[0], []]), show_progress=False)
    with pytest.raises(ValueError, match="ks must be positive"):
        evaluate_full_ranking(model, cases([[]], [[0]]), ks=(0,), show_progress=False)

    class WrongShape(type(model)):
        def score(self, users, histories):
            return np.zeros((len(users), 3))

    with pytest.raises(ValueError, match=r"shape \(1, 3\); expected \(1, 4\)"):
        evaluate_full_ranking(WrongShape(np.zeros((1, 4))).fit(), cases([[]], [[0]]), show_progress=False)


def test_unfitted_model_is_an_error(fixed_scores):
    unfitted = type(fixed_scores(np.zeros((1, 3))))(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="call fit"):
        evaluate_full_ranking(unfitted, cases([[]], [[0]]), show_progress=False)
