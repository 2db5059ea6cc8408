"""``recllm bench impute`` plumbing: feature tables, genre flags, splits, masked-cell scores, verdicts (hand-checked values)."""

import numpy as np
import pandas as pd
import pytest

from recllm.bench.impute.run import BenchConfig, setting_name
from recllm.bench.impute.report import _paired, _verdicts
from recllm.bench.impute.tasks import TABLES, TableSpec, genre_flags, imputation_scores, split_rows


def test_genre_flags():
    flags = genre_flags(pd.Series(["Action|Comedy", "", None, "Drama|Nonsense"], index=list("abcd")))
    assert flags.loc["a", "genre_Action"] == 1 and flags.loc["a", "genre_Comedy"] == 1 and flags.loc["a"].sum() == 2
    assert flags.loc["b"].sum() == 0
    assert flags.loc["c"].isna().all()
    assert flags.loc["d"].sum() == 1  # unknown names are ignored


def test_split_rows_is_a_seeded_partition():
    a, b = split_rows(100, (0.8, 0.1), 3), split_rows(100, (0.8, 0.1), 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(100))
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (80, 10, 10)
    assert not np.array_equal(a["train"], split_rows(100, (0.8, 0.1), 4)["train"])


def test_imputation_scores_by_hand():
    spec = TableSpec("t/users", "user_id", categorical=("c",), numeric=("n",), text=("g",), masked=("n", "c", "g"),
                     mar_driver="g", context="", set_valued=("g",))
    truth = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0], "c": [1, 0, 1, 1], "g": ["A|B", "A", "C", "B"]})
    filled = pd.DataFrame({"n": [1.0, 4.0, 3.0, 4.0], "c": [1.0, 1.0, 1.0, 0.0], "g": ["A|B", "A|C", "D", "B"]})
    mask = pd.DataFrame({"n": [False, True, True, False], "c": [True, True, False, False], "g": [False, True, True, True]})
    scores = imputation_scores(spec, truth, filled, mask)
    assert scores["n:rmse"] == pytest.approx(np.sqrt((4 + 0) / 2))
    assert scores["n:nrmse"] == pytest.approx(scores["n:rmse"] / truth["n"].std())
    assert scores["c:accuracy"] == 0.5  # 1 == 1.0 counts as a match
    assert scores["g:jaccard"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert scores["g:accuracy"] == pytest.approx(1 / 3)


def test_benchmark_tables_declare_consistent_columns():
    for dataset, specs in TABLES.items():
        for spec in specs:
            assert set(spec.masked) <= set(spec.columns) and spec.mar_driver in spec.columns
            assert spec.mar_driver not in spec.masked


def _by_seed(values):
    return dict(enumerate(values))


def test_paired_verdicts():
    values = {("t", "rmse", "s", "llm"): _by_seed([1.0, 1.1, 0.9]),
              ("t", "rmse", "s", "mice"): _by_seed([2.0, 2.1, 2.0])}
    text, verdict = _paired(values, ("t", "rmse", "s", "llm"), ("t", "rmse", "s", "mice"), lower_better=True)
    assert verdict == "wins" and text.startswith("-1.0333")
    _, verdict = _paired(values, ("t", "rmse", "s", "llm"), ("t", "rmse", "s", "mice"), lower_better=False)
    assert verdict == "loses"
    noisy = {("t", "acc", "s", "llm"): _by_seed([0.5, 0.7, 0.4]), ("t", "acc", "s", "mice"): _by_seed([0.6, 0.5, 0.5])}
    assert _paired(noisy, ("t", "acc", "s", "llm"), ("t", "acc", "s", "mice"), False)[1] == "tie"
    one = {("t", "acc", "s", "llm"): {0: 0.5}, ("t", "acc", "s", "knn"): {0: 0.4}}
    assert _paired(one, ("t", "acc", "s", "llm"), ("t", "acc", "s", "knn"), False)[1] == "ahead (no CI)"
    same = {("t", "acc", "s", "llm"): {0: 0.5}, ("t", "acc", "s", "knn"): {0: 0.5}}
    assert _paired(same, ("t", "acc", "s", "llm"), ("t", "acc", "s", "knn"), False)[1] == "tie (no CI)"


def _seeded_rows(imputer, values, seeds):
    return [{"dataset": "ml-100k", "seed": seed, "setting": ["mcar", 0.2], "imputer": imputer, "info": {}, "tasks": {},
             "scores": {"ml-100k/items": {"year:nrmse": values[seed]}}} for seed in seeds]


def test_verdicts_pair_values_by_seed_not_by_position():
    """The LLM is exactly 1 better than MICE on every seed; MICE's rows come in another seed order and one of its
    seeds is missing: paired by seed that is a win over the seeds both ran, paired by position it would be noise."""
    llm = {0: 1.0, 1: 5.0, 2: 9.0, 3: 4.0}
    mice = {0: 2.0, 1: 6.0, 2: 10.0}
    rows = _seeded_rows("llm", llm, [0, 1, 2, 3]) + _seeded_rows("mice", mice, [2, 0, 1])
    line = next(l for l in _verdicts(rows, ["MCAR 20%"]).splitlines() if "year:nrmse" in l)
    assert "| -1.0000 ± 0.0000 | wins |" in line


def test_counts_take_one_headline_metric_per_column_and_task():
    """rmse and nrmse of one column, and mae / mse / rmse of one task, are one verdict each in the count."""
    rows = [{"dataset": "ml-100k", "seed": s, "setting": ["mcar", 0.2], "imputer": imp, "info": {},
             "tasks": {"rating-reg": {"mae": base + 0.01 * s, "mse": base + 0.02 * s, "rmse": base + 0.03 * s}},
             "scores": {"ml-100k/items": {"year:rmse": 10 * yr + s, "year:nrmse": yr + 0.01 * s}}}
            for s in range(3) for imp, base, yr in (("llm", 0.5, 0.1), ("mice", 0.9, 0.9))]
    text = _verdicts(rows, ["MCAR 20%"])
    assert "vs mice: 2 ahead/wins, 0 behind/loses, 0 ties" in text  # year:nrmse and rating-reg rmse
    assert text.count("| yes |") == 2 and "year:rmse" in text and "rating-reg mae" in text  # shown, not counted


def test_verdict_table_from_rows():
    rows = [{"dataset": "ml-100k", "seed": s, "setting": ["mcar", 0.2], "imputer": imp, "info": {},
             "tasks": {"rating-reg": {"rmse": base + 0.01 * s}},
             "scores": {"ml-100k/items": {"year:rmse": yr + s}}}
            for s in range(3) for imp, base, yr in (("llm", 0.95, 1.0), ("mice", 0.93, 15.0), ("knn", 0.94, 15.0))]
    text = _verdicts(rows, ["MCAR 20%"])
    assert "| rating-reg rmse | MCAR 20% |" in text and "| ml-100k/items year:rmse | MCAR 20% |" in text
    line = next(l for l in text.splitlines() if "year:rmse" in l)
    assert "wins" in line and "loses" not in line
    line = next(l for l in text.splitlines() if "rating-reg rmse" in l)
    assert line.count("loses") == 2
    assert "vs mice: 0 ahead/wins, 1 behind/loses, 0 ties" in text  # year:rmse has no nRMSE: not a headline here


def test_config_validation_and_presets():
    quick = BenchConfig.preset(True)
    assert quick.seeds == (0,) and quick.settings == (("mcar", 0.05),) and quick.dlrm["ml-100k"].max_epochs == 3
    full = BenchConfig.preset(False, seeds=None)
    assert full.seeds == (0, 1, 2) and len(full.settings) == 5
    with pytest.raises(ValueError, match="unknown imputer"):
        BenchConfig(imputers=("magic",))
    with pytest.raises(ValueError, match="unknown benchmark data set"):
        BenchConfig(datasets=("nope",))
    with pytest.raises(ValueError, match="unknown benchmark data set"):
        BenchConfig(attempts=("default",), attempt_datasets=("nope",))
    assert setting_name(("mnar", 0.2)) == "MNAR 20%"


@pytest.mark.integration
def test_quick_benchmark_on_real_data(shared_data, tmp_path, monkeypatch, capsys):
    from recllm.bench.impute.run import run_benchmark

    # reuse by key only here (tests/bench/test_bench_runs.py checks the code identity): in a working tree that others
    # edit meanwhile, a changed recllm module would rightly make these runs stale
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    config = BenchConfig.preset(True, datasets=("advertising",), imputers=("deletion", "mean", "mice"),
                                llm_fit="shared")  # the shared fit's reference rows are run too
    assert run_benchmark(config, out=str(tmp_path / "imputation.md"), show_progress=True) == 0
    progress = capsys.readouterr().out
    assert "advertising seed 0 complete none: started\n" in progress  # each computed unit says so before it runs
    assert "advertising seed 0 complete none: done" in progress
    text = (tmp_path / "imputation.md").read_text()
    assert "**advertising / click / auc**" in text and "daily_time_spent:rmse" in text
    assert "advertising/advertising.csv" in text
    store = tmp_path / "imputation.runs.jsonl"
    stored = [line for line in store.read_text().splitlines() if '"key"' in line]
    # complete table + settings x (imputers + MICE's shared-fit reference)
    assert len(stored) == 1 + len(config.settings) * 4 and '"imputer": "mice-shared"' in store.read_text()

    # a rerun (even with the cache gone, as on a fresh machine) reuses every stored run and fits nothing
    import recllm.bench.impute.run as bench

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "another-cache"))
    monkeypatch.setattr(bench, "downstream", lambda *a, **k: pytest.fail("a stored run was recomputed"))
    assert run_benchmark(config, out=str(tmp_path / "imputation.md"), show_progress=True) == 0
    assert ": started" not in capsys.readouterr().out  # a stored unit is not started again
    rerun, changes = (tmp_path / "imputation.md").read_text().split("## Changes from the previous version", 1)
    assert rerun.split("cost nothing;", 1)[1].rstrip() == text.split("cost nothing;", 1)[1].rstrip()
    assert "No figure in its tables changed." in changes


@pytest.mark.integration
def test_union_tables_hide_every_settings_cells(shared_data):
    from recllm.data import load
    from recllm.bench.impute.run import SETTINGS, masked_tables, union_tables

    ds = load("ml-100k")
    union = union_tables(ds, "ml-100k", SETTINGS, seed=1)
    for setting in SETTINGS:
        for name, (truth, masked, mask) in masked_tables(ds, "ml-100k", setting, 1).items():
            assert union[name][mask].isna().to_numpy()[mask.to_numpy()].all()
    for name, table in union.items():
        truth = masked_tables(ds, "ml-100k", SETTINGS[0], 1)[name][0]
        new_gaps = table.isna() & truth.notna()
        assert 0.5 < new_gaps[list(new_gaps.columns[new_gaps.any()])].to_numpy().mean() < 0.85


def test_attempts_table_counts_clipping_and_names_each_attempt():
    from recllm.bench.impute.report import _attempts_table

    scores = {"advertising/advertising": {"income:rmse": 2.0}}
    attempts = [
        {"dataset": "advertising", "attempt": "[mean]", "scores": scores, "info": {}},
        {"dataset": "advertising", "attempt": "expected numbers", "scores": scores,
         "info": {"t": {"fit_seconds": 3.0, "examples": 256, "how": {"llm-expected": 40}}}},
        {"dataset": "advertising", "attempt": "unshaped numbers", "scores": scores,
         "info": {"t": {"fit_seconds": 3.0, "examples": 256, "how": {"llm-generate": 40, "clipped": 7}}}},
        {"dataset": "advertising", "attempt": "complete-rows", "error": "no complete row"},
    ]
    text = _attempts_table(attempts)
    assert "| 7/40 |" in text and "no complete row" in text and "2.0000" in text
    assert "- `expected numbers`: LLMImputer(numeric_decoding='expected')" in text
    assert "- `unshaped numbers`: LLMImputer(numeric_shape=False)" in text
    assert "[mean]`" not in text  # the classic imputers need no legend


def test_inference_dtypes_are_counted_per_table_fill():
    from recllm.bench.impute.report import _inference_dtypes

    rows = [{"imputer": "llm", "info": {"a": {"inference_dtype": "float32"}, "b": {"inference_dtype": "bfloat16"}}},
            {"imputer": "llm", "info": {"a": {}}}, {"imputer": "mean", "info": {"a": {}}}]
    assert _inference_dtypes(rows) == "bfloat16 x1, float32 x1, not recorded x1"
    assert _inference_dtypes(rows[3:]) == "no LLM runs"


def test_a_pinned_precision_reaches_the_llm_imputer_and_every_llm_run_key(monkeypatch):
    import recllm.llm.precision as precision
    from recllm.bench.impute.run import BenchConfig, make_imputer
    from recllm.bench.impute.tasks import TABLES

    monkeypatch.setattr(precision, "_cpu_auto", lambda: precision.Precision("bfloat16", "a CPU with fast bf16"))
    auto, pinned = BenchConfig(), BenchConfig(precision="float32")
    assert auto.resolved_precision() == {"inference": "bfloat16", "autocast": True}
    assert pinned.resolved_precision() == {"inference": "float32", "autocast": False}
    assert auto.cache_parts("llm") != pinned.cache_parts("llm")  # never mixed in one table
    assert auto.cache_parts("mice") == pinned.cache_parts("mice")  # the classic imputers do not depend on it
    imputer = make_imputer("llm", TABLES["advertising"][0], 3, pinned)
    assert imputer.dtype == "float32" and imputer.sft.bf16 is False and imputer.sft.seed == 3
    with pytest.raises(ValueError, match="precision"):
        BenchConfig(precision="float8")
