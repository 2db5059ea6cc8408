"""The baselines benchmark end to end: on planted synthetic data (fast) and on real MovieLens-100K (integration)."""

import pytest

from recllm.eval.baselines import run_baselines
from tests.benchmark_scripts import load_benchmark
from tests.models.contract import planted_sequence_split


def bench_module():
    return load_benchmark("foundation_baselines")


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

    module = bench_module()
    sampled = module.sampled_rows(split, res, seed=0)
    text = module.render(res, sampled, split)
    assert "| itemknn |" in text and "recall@3" in text and "Best five" in text


@pytest.mark.integration
def test_quick_benchmark_on_movielens(shared_data, tmp_path):
    module = bench_module()
    split = module.load_split()
    res, sampled = module.results(seed=0, quick=True, split=split)
    assert res.n_test_users == 943
    hr10 = {name: s["hr@10"][0] for name, s in res.summaries.items()}
    assert 0.02 < hr10["popularity"] < hr10["itemknn"] < 0.5, hr10
    assert all(p.is_file() for p in module.data_files())
    assert module.main(["--quick", "--out", str(tmp_path / "r.md")]) == 0
    assert "sha256" in (tmp_path / "r.md").read_text()
