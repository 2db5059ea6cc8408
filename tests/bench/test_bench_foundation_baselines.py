"""The baselines benchmark end to end: on planted synthetic data (fast) and on real MovieLens-100K (integration)."""

import pytest

import recllm.bench.foundation.baselines as bench
from recllm.cli import main
from recllm.eval.baselines import run_baselines
from tests.models.contract import planted_sequence_split


def test_run_baselines_on_planted_data():
    split = planted_sequence_split()
    grid = {"k": [1, 20], "shrinkage": [0.0], "recency_decay": [None, 0.5]}
    res = run_baselines(split, grid=grid, ks=(1, 10), seed=0, n_boot=200)
    assert set(res.summaries) == {"popularity", "itemknn"}
    assert res.n_test_users == len(split.eval_cases("test")) and len(res.tuning.rows) == 4
    assert res.params["itemknn"] == res.tuning.best_params
    knn, pop = res.summaries["itemknn"]["hr@1"][0], res.summaries["popularity"]["hr@1"][0]
    assert knn > 0.6 > pop  # the planted chains are found by co-occurrence, not by popularity
    assert res.comparisons["hr@1"].significant and res.comparisons["hr@1"].mean > 0
    rows = res.table_rows()
    assert [r["model"] for r in rows] == ["popularity", "itemknn"] and "±" in rows[1]["hr@10"]

    sampled = bench.sampled_rows(split, res, seed=0)
    text = bench.render(res, sampled, split)
    assert "| itemknn |" in text and "recall@3" in text and "Best five" in text


@pytest.mark.integration
def test_quick_benchmark_on_movielens(shared_data, tmp_path):
    split = bench.load_split()
    res, sampled = bench.results(seed=0, quick=True, split=split)
    assert res.n_test_users == 943
    hr10 = {name: s["hr@10"][0] for name, s in res.summaries.items()}
    assert 0.02 < hr10["popularity"] < hr10["itemknn"] < 0.5, hr10
    out = tmp_path / "r.md"
    assert main(["bench", "foundation-baselines", "--quick", "--allow-dirty", "--out", str(out)]) == 0
    text = out.read_text()
    assert "ml-100k/u.data" in text and "sha256" in text and "| itemknn |" in text
