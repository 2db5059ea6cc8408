"""``recllm bench learn`` on cold-start splits: the content-kNN row and the metrics among the new items only."""

import numpy as np
import pytest

from recllm.bench.learn.report import new_items_table, write_learn_report
from recllm.bench.learn.run import (CONTENT_KNN, NEW_ITEM_PREFIX, RunResult, cold_start_new_items,
                                    flat_validation, model_specs, planned, run_one)
from recllm.bench.reporting import ReportTarget
from recllm.data.dataset import ITEM, TIME
from recllm.data.split import cold_start_split
from recllm.eval.ranking import evaluate_full_ranking
from recllm.models import PrecomputedScores


def test_ranking_among_candidates_only(loo):
    cases = loo.eval_cases("test").subset(np.arange(3))
    n = loo.dataset.n_items
    scores = np.tile(np.arange(n, 0, -1, dtype=np.float64), (3, 1))  # item 0 best, item n-1 worst
    model = PrecomputedScores(scores, cases.users).fit(loo)
    full = evaluate_full_ranking(model, cases, ks=(1, n), show_progress=False)
    targets = np.array([t[0] for t in cases.targets])
    candidates = np.unique(np.r_[targets, n - 1])
    among = evaluate_full_ranking(model, cases, ks=(1, n), show_progress=False, candidates=candidates)
    assert among.n_candidates == candidates.size and full.n_candidates == n
    # rank among the candidates = 1 + candidates scored above the target (history masked in both)
    expected = [1 + sum(c < t and c not in set(h.tolist()) for c in candidates)
                for t, h in zip(targets, cases.histories)]
    assert among.first_rank.tolist() == expected
    assert (among.first_rank <= full.first_rank).all() and (among.first_rank < full.first_rank).any()
    with pytest.raises(ValueError, match="target outside the 1 candidates"):
        evaluate_full_ranking(model, cases, show_progress=False, candidates=[n - 1 if targets[0] != n - 1 else 0])


def test_new_items_are_those_first_seen_in_the_test_period(dataset, loo):
    split = cold_start_split(dataset)
    new = cold_start_new_items(split)
    first = dataset.interactions.groupby(ITEM)[TIME].min()
    assert new.size == split.info["test_items"] > 0
    assert set(new.tolist()) == set(dataset.item_index(first.index[first >= split.info["test_from"]]).tolist())
    assert not set(new.tolist()) & set(dataset.item_index(split.train[ITEM]).tolist())
    assert all(t[0] in set(new.tolist()) for t in split.eval_cases("test").targets)
    assert cold_start_new_items(loo) is None


def test_content_knn_row_ranks_new_items_from_content(dataset, content, loo):
    spec = next(s for s in model_specs(quick=True) if s.name == CONTENT_KNN)
    assert spec.uses_content and spec.encoder and planned(spec, "ml-100k", True, quick=True)
    split = cold_start_split(dataset)
    res = run_one(spec, split, 0, 1, content)
    assert {f"{NEW_ITEM_PREFIX}{m}@{k}" for m in ("hr", "ndcg") for k in (10, 50)} <= set(res.metrics)
    for k in (10, 50):  # fewer candidates can only move a target up
        full, new = np.array(res.per_user[f"hr@{k}"]), np.array(res.per_user[f"{NEW_ITEM_PREFIX}hr@{k}"])
        assert (new >= full).all()
    # the cyclic content says which new item comes next: better than a random ranking of the new items
    n_new = split.info["test_items"]
    random_ndcg = np.sum(1 / np.log2(np.arange(2, min(10, n_new) + 2))) / n_new
    assert res.metrics[f"{NEW_ITEM_PREFIX}ndcg@10"] > random_ndcg + 0.1, (res.metrics, random_ndcg)
    assert f"{NEW_ITEM_PREFIX}hr@10" not in run_one(spec, loo, 0, 1, content).metrics


def fake_cold_run(model, value, n=20):
    per_user = {f"{m}@{k}": list(np.full(n, value)) for m in ("hr", "ndcg") for k in (10, 50, 200)}
    per_user.update({f"{NEW_ITEM_PREFIX}{m}@{k}": list(np.full(n, 2 * value)) for m in ("hr", "ndcg")
                     for k in (10, 50)})
    return RunResult("cyclic", "cold_start", 0, model, {k: float(np.mean(v)) for k, v in per_user.items()},
                     per_user, 1.0, 0.1, 3, 2, 12.0, n)


def test_report_tables_cold_start_among_new_items_beside_the_full_catalogue(tmp_path):
    specs = model_specs(quick=True)
    names = [s.name for s in specs]
    assert CONTENT_KNN in names
    results = [fake_cold_run(name, 0.01 * (i + 1)) for i, name in enumerate(names)]
    info = {("cyclic", "cold_start"): {"test_users": 20, "test_cases": 20, "valid_cases": 5, "informative": False,
                                       "note": "few", "test_items": 40}}
    text = write_learn_report(ReportTarget(tmp_path / "learn.md", "commit abc (test)"), results, specs, ["cyclic"],
                              [0], [], 1.0, True, None, tmp_path / "learn.runs.jsonl", split_info=info).read_text()
    section = text.split("### cold_start", 1)[1]
    assert section.index("Full catalogue (every item a candidate") < section.index("Among the 40 items new")
    among = section.split("Among the 40 items new", 1)[1]
    i = names.index(CONTENT_KNN)
    assert f"| {CONTENT_KNN} | 1 | {0.02 * (i + 1):.4f} " in among
    # a random ranking of one target among 40 new items: HR@10 = 10/40, HR@50 = 1
    assert "| random ranking (expected) | - | 0.2500 |" in among and "| 1.0000 |" in among
    # runs stored before the new-item metrics existed have no row there; no such run, no table
    old = [RunResult(r.dataset, r.split, r.seed, r.model, {k: v for k, v in r.metrics.items() if ":" not in k},
                     {k: v for k, v in r.per_user.items() if ":" not in k}) for r in results]
    assert new_items_table({r.model: [r] for r in old}, names, info[("cyclic", "cold_start")]) == ""


def test_a_fit_whose_validation_never_scored_is_flagged(tmp_path):
    assert flat_validation([{"epoch": 1, "valid_ndcg@10": 0.0}, {"epoch": 2, "valid_ndcg@10": 0.0}])
    assert not flat_validation([{"epoch": 1, "valid_ndcg@10": 0.0}, {"epoch": 2, "valid_ndcg@10": 0.01}])
    assert not flat_validation([]) and not flat_validation([{"epoch": 1, "loss": 2.0}])  # no training, no validation
    specs = model_specs(quick=True)
    runs = [fake_cold_run(s.name, 0.01) for s in specs]
    for seed in (0, 1):
        flat = fake_cold_run("LEARN (shared tower)", 0.01)
        flat.seed, flat.flat_validation = seed, True
        runs.append(flat)
    text = write_learn_report(ReportTarget(tmp_path / "learn.md", "commit abc (test)"), runs, specs, ["cyclic"],
                              [0, 1], [], 1.0, True, None, tmp_path / "learn.runs.jsonl").read_text()
    assert "**No validation signal**: LEARN (shared tower) (seeds 0, 1): validation NDCG@10 was 0" in text
    assert text.count("No validation signal") == 1
