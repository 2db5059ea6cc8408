"""Fixed sampled candidates: exclusion, determinism, persistence, and metrics against hand-computed ranks."""

import math

import numpy as np
import pandas as pd
import pytest

from recllm.data.dataset import RecDataset
from recllm.data.split import EvalCases
from recllm.eval.sampled import SampledCandidates, evaluate_sampled, from_recommender


def toy_dataset(n_items=60, n_users=5):
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{j}" for j in range(n_users)]})
    inter = pd.DataFrame({"user_id": ["u0"], "item_id": ["i0"], "timestamp": np.array([0], dtype=np.int64)})
    return RecDataset("toy", inter, items, users)


def toy_cases():
    return EvalCases(
        np.array([0, 1, 2]),
        [np.arange(0, 10), np.array([5, 6]), np.arange(20, 45)],
        [np.array([10]), np.array([7, 8]), np.array([45])],
    )


def test_draw_excludes_history_and_targets_and_is_deterministic():
    ds, cases = toy_dataset(), toy_cases()
    cands = SampledCandidates.draw(ds, cases, n_negatives=20, seed=3)
    assert len(cands) == 4 and cands.candidates.shape == (4, 21) and cands.n_negatives == 20
    assert cands.case.tolist() == [0, 1, 1, 2] and cands.users.tolist() == [0, 1, 1, 2]
    assert cands.positives.tolist() == [10, 7, 8, 45]
    for row in range(len(cands)):
        case = cands.case[row]
        negs = np.delete(cands.candidates[row], cands.positive[row])
        assert len(set(negs.tolist())) == 20
        assert not set(negs.tolist()) & (set(cases.histories[case].tolist()) | set(cases.targets[case].tolist()))
    again = SampledCandidates.draw(ds, cases, n_negatives=20, seed=3)
    np.testing.assert_array_equal(again.candidates, cands.candidates)
    other = SampledCandidates.draw(ds, cases, n_negatives=20, seed=4)
    assert not np.array_equal(other.candidates, cands.candidates)


def test_a_target_already_in_the_history_gets_no_row():
    """It would be the one candidate the user had consumed among negatives drawn outside the history."""
    ds = toy_dataset()
    cases = EvalCases(np.array([0, 1, 2]), [np.array([1, 2, 3]), np.array([4, 5]), np.array([6])],
                      [np.array([2, 9]), np.array([5]), np.array([7])])
    cands = SampledCandidates.draw(ds, cases, n_negatives=5, seed=0)
    assert cands.case.tolist() == [0, 2] and cands.positives.tolist() == [9, 7]
    for row in range(len(cands)):
        assert not set(cands.candidates[row].tolist()) & set(cases.histories[cands.case[row]].tolist())


def test_positive_column_is_shuffled():
    cases = EvalCases(np.zeros(200, dtype=np.int64), [np.array([0])] * 200, [np.array([1])] * 200)
    cands = SampledCandidates.draw(toy_dataset(), cases, n_negatives=5, seed=0)
    assert len(set(cands.positive.tolist())) == 6  # every column holds the positive sometimes


def test_negatives_are_uniform_over_allowed_items():
    n_items = 30
    cases = EvalCases(np.zeros(3000, dtype=np.int64), [np.array([0, 1])] * 3000, [np.array([2])] * 3000)
    cands = SampledCandidates.draw(toy_dataset(n_items), cases, n_negatives=5, seed=0)
    counts = np.bincount(cands.candidates.ravel(), minlength=n_items)
    assert counts[:2].sum() == 0 and counts[2] == 3000
    allowed = counts[3:]
    expected = 3000 * 5 / 27
    chi2 = ((allowed - expected) ** 2 / expected).sum()
    assert chi2 < 60  # df = 26; the 0.999 quantile is ~54


def test_save_load_roundtrip(tmp_path):
    cands = SampledCandidates.draw(toy_dataset(), toy_cases(), n_negatives=7, seed=1)
    path = cands.save(tmp_path / "c.parquet")
    back = SampledCandidates.load(path)
    np.testing.assert_array_equal(back.candidates, cands.candidates)
    np.testing.assert_array_equal(back.positive, cands.positive)
    np.testing.assert_array_equal(back.case, cands.case)
    assert [h.tolist() for h in back.histories] == [h.tolist() for h in cands.histories]
    assert (back.n_items, back.seed, back.dataset) == (60, 1, "toy")
    assert [p.name for p in tmp_path.iterdir()] == ["c.parquet"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        SampledCandidates.load(tmp_path / "missing.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="other.parquet.*not a recllm"):
        SampledCandidates.load(tmp_path / "other.parquet")


def test_too_few_items_is_an_error():
    cases = EvalCases(np.array([0]), [np.arange(50)], [np.array([50])])
    with pytest.raises(ValueError, match="only 9 items"):
        SampledCandidates.draw(toy_dataset(60), cases, n_negatives=20)


def test_too_few_items_is_the_users_mistake_naming_the_user_and_the_data_set():
    """A data set too small for the protocol is a UserInputError (one line, exit 2 on the command line), not an
    internal error."""
    from recllm.errors import UserInputError

    cases = EvalCases(np.array([3]), [np.arange(50)], [np.array([50])])
    with pytest.raises(UserInputError, match="user 'u3' has only 9 items") as raised:
        SampledCandidates.draw(toy_dataset(60), cases, n_negatives=20)
    assert "data set 'toy'" in str(raised.value) and "\n" not in str(raised.value)


def test_metrics_hand_computed():
    # 2 rows, 4 candidates each; scores given per column; positive in column 1 then column 3
    cands = SampledCandidates(
        case=np.array([0, 1]), users=np.array([0, 1]), histories=[np.array([9]), np.array([9])],
        candidates=np.array([[0, 1, 2, 3], [4, 5, 6, 7]]), positive=np.array([1, 3]), n_items=10, seed=0,
    )
    table = np.array([[0.9, 0.8, 0.1, 0.2], [0.5, 0.6, 0.7, 0.4]])  # ranks 2 and 4

    def score_fn(users, histories, candidates):
        return table[users]

    res = evaluate_sampled(score_fn, cands, ks=(1, 3), show_progress=False)
    assert res.first_rank.tolist() == [2, 4]
    assert res.per_user["recall@3"].tolist() == [1.0, 0.0]
    assert res.per_user["mrr@3"] == pytest.approx([0.5, 0.0])
    assert res.per_user["ndcg@3"] == pytest.approx([1 / math.log2(3), 0.0])
    assert res.per_user["recall@1"].tolist() == [0.0, 0.0]
    assert set(res.per_user) == {f"{m}@{k}" for m in ("recall", "mrr", "ndcg") for k in (1, 3)}


def test_constant_score_fn_ranks_positive_last():
    cands = SampledCandidates.draw(toy_dataset(), toy_cases(), n_negatives=20, seed=0)
    res = evaluate_sampled(lambda u, h, c: np.zeros(c.shape), cands, ks=(10,), show_progress=False)
    assert res.first_rank.tolist() == [21] * 4 and res.per_user["recall@10"].sum() == 0


def test_from_recommender_gathers_full_scores(fixed_scores):
    rng = np.random.default_rng(0)
    table = rng.random((3, 60))
    cands = SampledCandidates.draw(toy_dataset(), toy_cases(), n_negatives=20, seed=0)
    score_fn = from_recommender(fixed_scores(table))
    got = score_fn(cands.users, cands.histories, cands.candidates)
    np.testing.assert_array_equal(got, np.take_along_axis(table[cands.users], cands.candidates, axis=1))
    res = evaluate_sampled(score_fn, cands, show_progress=False, batch_size=3)
    expected_rank = 1 + (got >= got[np.arange(4), cands.positive][:, None]).sum(1) - 1
    assert res.first_rank.tolist() == expected_rank.tolist()


def test_bad_scores_are_an_error():
    cands = SampledCandidates.draw(toy_dataset(), toy_cases(), n_negatives=3, seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_sampled(lambda u, h, c: np.full(c.shape, np.nan), cands, show_progress=False)
    with pytest.raises(ValueError, match="shape"):
        evaluate_sampled(lambda u, h, c: np.zeros((len(u), 2)), cands, show_progress=False)


def test_pool_restricts_negatives_and_too_small_pool_fails():
    ds, cases = toy_dataset(100), toy_cases()
    pool = np.arange(50, 90)
    cands = SampledCandidates.draw(ds, cases, n_negatives=20, seed=3, pool=pool)
    for row in range(len(cands)):
        negs = np.delete(cands.candidates[row], cands.positive[row])
        assert set(negs.tolist()) <= set(pool.tolist()) and len(set(negs.tolist())) == 20
    assert cands.positives.tolist() == [10, 7, 8, 45]  # positives come from the cases, pool or not
    with pytest.raises(ValueError, match="of the pool"):
        SampledCandidates.draw(ds, cases, n_negatives=20, seed=3, pool=np.arange(50, 60))
    with pytest.raises(ValueError, match="outside"):
        SampledCandidates.draw(ds, cases, n_negatives=5, pool=np.array([-1, 3]))
