"""``recllm bench impute`` at the paper's scale: the LLM imputer on its own defaults (no cell cap), peers side by
side (skipped with a line when absent), the --plan, code columns scored by accuracy, the computed verdict."""

import dataclasses

import pandas as pd
import pytest

import recllm.bench.impute.run as bench
from recllm.bench.impute.plan import Rates, format_plan, plan_units
from recllm.bench.impute.report import llm_setup_line, verdict_paragraph
from recllm.bench.impute.run import BenchConfig, make_imputer
from recllm.bench.impute.tasks import TABLES, TableSpec, imputation_scores
from recllm.impute.llm import DEFAULT_SFT, VALIDATION_FRACTION


def test_full_llm_run_has_no_cell_cap_and_uses_the_imputers_defaults():
    config = BenchConfig.preset(False)
    assert config.llm_departures() == {} and config.llm_fit == "per-setting" and config.seeds == (0, 1, 2)
    assert {"llm", "miceforest", "great", "mice"} <= set(config.imputers)
    spec = TABLES["ml-100k"][1]
    imputer = make_imputer("llm", spec, seed=2, config=config)
    assert imputer.max_train_examples is None and imputer.max_epochs is None and imputer.sft is None
    assert imputer.training == "whole-row" and imputer.validation_fraction == VALIDATION_FRACTION
    assert imputer.target_columns is None and imputer.seed == 2
    assert imputer._sft_config() == dataclasses.replace(DEFAULT_SFT, seed=2)
    assert config.max_epochs() == DEFAULT_SFT.epochs and config.great_budget().epochs == DEFAULT_SFT.epochs
    assert "departures from those defaults: none" in llm_setup_line(config)
    assert f"up to {DEFAULT_SFT.epochs} epochs at lr {DEFAULT_SFT.learning_rate:g}" in llm_setup_line(config)


def test_quick_departures_are_visible():
    quick = BenchConfig.preset(True)
    assert "great" not in quick.imputers and "great" in BenchConfig.preset(True, imputers=("great",)).imputers
    imputer = make_imputer("llm", TABLES["advertising"][0], seed=0, config=quick)
    assert imputer.max_train_examples == quick.llm_max_rows and imputer.max_epochs == quick.llm_max_epochs
    line = llm_setup_line(quick)
    assert f"max_train_examples={quick.llm_max_rows}" in line and f"max_epochs={quick.llm_max_epochs}" in line
    assert imputer.max_validation_cells == quick.llm_max_validation_cells
    assert f"max_validation_cells={quick.llm_max_validation_cells}" in line
    with pytest.raises(ValueError, match="llm_max_rows"):
        BenchConfig(llm_max_rows=0)
    with pytest.raises(ValueError, match="llm_fit"):
        BenchConfig(llm_fit="sometimes")


def test_llm_run_keys_do_not_touch_the_classic_imputers_runs():
    a, b = BenchConfig(), BenchConfig(llm_max_epochs=1)
    assert a.cache_parts("mice") == b.cache_parts("mice") and a.cache_parts("llm") != b.cache_parts("llm")
    assert a.cache_parts("great") != b.cache_parts("great")  # GReaT's epochs follow the LLM's


def test_code_columns_are_scored_by_exact_match():
    spec = TableSpec("t/users", "user_id", categorical=(), numeric=("band", "x"), text=(), masked=("band", "x"),
                     mar_driver="x", context="")
    truth = pd.DataFrame({"band": [1.0, 2.0, 3.0, 1.0], "x": [0.5, 1.5, 2.5, 3.5]})
    filled = pd.DataFrame({"band": [1.0, 3.0, 3.0, 1.0], "x": [0.5, 1.5, 2.5, 3.5]})
    mask = pd.DataFrame({"band": [True, True, True, False], "x": [True, False, False, False]})
    scores = imputation_scores(spec, truth, filled, mask, codes=("band",))
    assert scores["band:accuracy"] == pytest.approx(2 / 3) and "band:rmse" not in scores
    assert "x:rmse" in scores and "x:accuracy" not in scores
    assert "band:rmse" in imputation_scores(spec, truth, filled, mask)


def _rows(llm_year, mice_year, llm_genres, mice_genres, great_year, seeds=(0, 1, 2)):
    out = []
    for seed in seeds:
        for imputer, year, genres in (("llm", llm_year, llm_genres), ("mice", mice_year, mice_genres),
                                      ("great", great_year, 0.5)):
            out.append({"dataset": "ml-100k", "seed": seed, "setting": ["mcar", 0.2], "imputer": imputer, "info": {},
                        "tasks": {"rating-reg": {"rmse": 1.0 + 0.01 * seed}},
                        "scores": {"ml-100k/items": {"year:rmse": 10 * year + seed, "year:nrmse": year + 0.01 * seed,
                                                     "genres:jaccard": genres + 0.01 * seed,
                                                     "genres:accuracy": genres / 2}}})
    return out


def test_verdict_paragraph_follows_the_numbers():
    text = verdict_paragraph(_rows(llm_year=0.2, mice_year=0.9, llm_genres=0.3, mice_genres=0.6, great_year=0.9),
                             ["MCAR 20%"])
    mice = next(line for line in text.splitlines() if "LLM vs MICE" in line)
    assert "2 comparisons" in mice and "LLM ahead in 1, mice ahead in 1" in mice
    assert "LLM wins on: ml-100k/items year:nrmse (MCAR 20%)" in mice
    assert "mice wins on: ml-100k/items genres:jaccard (MCAR 20%)" in mice and "here: not met" in mice
    great = next(line for line in text.splitlines() if "LLM vs GReaT" in line)
    # year won (0.2 vs 0.9), genres lost (0.3 vs GReaT's 0.5), the task tied (the same numbers)
    assert "3 comparisons" in great and "LLM ahead in 1, great ahead in 1, 1 ties" in great and "here: not met" in great
    assert "great wins on: ml-100k/items genres:jaccard (MCAR 20%)" in great
    assert "not measured" in next(line for line in text.splitlines() if "miceforest" in line)
    forest = [{**row, "imputer": "miceforest"} for row in _rows(0.2, 0.9, 0.3, 0.6, 0.9) if row["imputer"] == "mice"]
    line = next(line for line in verdict_paragraph(_rows(0.2, 0.9, 0.3, 0.6, 0.9) + forest, ["MCAR 20%"]).splitlines()
                if "LLM vs miceforest" in line)
    assert "LLM ahead in 1, miceforest ahead in 1" in line and "Goal" not in line  # shown; the goal is MICE
    flipped = verdict_paragraph(_rows(0.9, 0.2, 0.6, 0.3, 0.1), ["MCAR 20%"])
    line = next(line for line in flipped.splitlines() if "LLM vs MICE" in line)
    assert "LLM ahead in 1, mice ahead in 1" in line and "LLM wins on: ml-100k/items genres:jaccard" in line
    one = verdict_paragraph(_rows(0.2, 0.9, 0.7, 0.6, 0.9, seeds=(0,)), ["MCAR 20%"])
    line = next(line for line in one.splitlines() if "LLM vs MICE" in line)
    assert "one seed" in line and "LLM ahead in 2" in line and "here: met" in line


def test_peers_run_when_installed_and_are_skipped_with_a_line_when_not(shared_data, tmp_path, monkeypatch):
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    monkeypatch.setattr(bench, "peers_available", lambda: {"miceforest": False, "great": True})
    ran = []

    def fake_impute(name, dataset, tables, seed, config, *args, **kwargs):
        ran.append(name)
        return {"filled": {}, "scores": {s: {"age:nrmse": 1.0} for s in tables}, "info": {}}

    monkeypatch.setattr(bench, "impute_tables", fake_impute)
    monkeypatch.setattr(bench, "downstream", lambda *a, **k: {"click": {"f1": 0.5, "auc": 0.5}})
    config = BenchConfig.preset(True, datasets=("advertising",), imputers=("mean", "miceforest", "great"))
    assert bench.run_benchmark(config, out=str(tmp_path / "imputation.md"), show_progress=False) == 0
    assert ran == ["mean", "great"]
    text = (tmp_path / "imputation.md").read_text()
    assert "miceforest: skipped -- miceforest and lightgbm not installed (pip install 'recllm[peers]'" in text
    assert "imputers mean, great;" in text and "- Peer imputers: miceforest (" in text and "great (be-great " in text


def test_plan_lists_stored_units_and_estimates_from_the_rates(shared_data, tmp_path, monkeypatch):
    from recllm.bench.runs import RunStore

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    config = BenchConfig.preset(False, datasets=("advertising",), seeds=(0,), settings=(("mcar", 0.2),),
                                imputers=("mean", "llm", "great"))
    table = "advertising/users"
    rates = Rates(llm_row_s={table: 0.5}, llm_cell_s={table: 0.1}, great_step_s={table: 0.2},
                  great_fit_s={table: 5.0}, great_fill_row_s={table: 2.0}, imputer_s={(table, "mean"): 1.0},
                  dlrm_s={"advertising": 10.0})
    store = RunStore(tmp_path / "imputation.runs.jsonl")
    store.put(bench.unit_key("advertising", 0, ("mcar", 0.2), "mean", config), {"done": True})
    units = plan_units(config, ("mean", "llm", "great"), rates, store)
    assert [(u.setting, u.imputer, u.stored) for u in units] == [
        ("complete", "none", False), ("MCAR 20%", "mean", True), ("MCAR 20%", "llm", False),
        ("MCAR 20%", "great", False)]
    masked, mask = bench.masked_tables(__import__("recllm.data", fromlist=["load"]).load("advertising"), "advertising",
                                       ("mcar", 0.2), 0)[table][1:]
    cells, rows = int(mask.to_numpy().sum()), int(masked.notna().any(axis=1).sum())
    gaps = [c for c in masked.columns if masked[c].isna().any()]
    held = min(256, round(0.05 * int(masked[gaps].notna().to_numpy().sum())))
    llm = units[2].seconds
    incomplete = int(mask.to_numpy().any(axis=1).sum())
    # the fill measured against the peak: 16 sampled rows filled 3 times' worth (the counted pass twice), + 1.5 s
    llm_measure = 3.0 * 16 * cells / incomplete * 0.1 + 1.5
    assert llm == pytest.approx(10 + cells * 0.1 + config.max_epochs() * (rows * 0.5 + held * 0.1) + llm_measure)
    assert units[1].seconds == pytest.approx(11.0)
    steps = config.max_epochs() * -(-len(masked) // DEFAULT_SFT.batch_size)  # GReaT: the LLM's batches x epochs
    assert units[3].seconds == pytest.approx(10 + 5.0 + steps * 0.2 + incomplete * 2.0 + 3.0 * 16 * 2.0 + 1.5)
    text = format_plan(units, rates, ["great: skipped -- x"])
    assert "1 of 4 units stored" in text and "great: skipped -- x" in text
    left = units[0].seconds + llm + units[3].seconds
    assert f"estimated time left on this machine: ~{left / 3600:.1f} h" in text if left >= 3600 else \
        f"estimated time left on this machine: ~{left / 60:.1f} min" in text


def _with_reference(rows, reference_year):
    """``rows`` plus a MICE shared-fit reference row per seed whose year score is ``reference_year``."""
    extra = [{**row, "imputer": "mice-shared", "tasks": {},
              "scores": {"ml-100k/items": {**row["scores"]["ml-100k/items"],
                                           "year:nrmse": reference_year + 0.01 * row["seed"]}}}
             for row in rows if row["imputer"] == "mice"]
    return rows + extra


def test_the_mice_goal_compares_on_equal_data_and_shows_the_other_pair():
    """With the shared fit the goal line is LLM vs MICE fitted on the same union-masked table; MICE on each setting's
    own masked table (more cells) is shown beside it without a goal; 'met' says what it means."""
    rows = _with_reference(_rows(llm_year=0.5, mice_year=0.2, llm_genres=0.6, mice_genres=0.6, great_year=0.9),
                           reference_year=0.8)
    text = verdict_paragraph(rows, ["MCAR 20%"])
    equal = next(line for line in text.splitlines() if "LLM vs MICE on equal data" in line)
    assert "MICE (shared-fit cells) ahead in 0" in equal and "LLM wins on: ml-100k/items year:nrmse" in equal
    assert "here: met, where met means no significant loss over 3 seeds" in equal
    other = next(line for line in text.splitlines() if "each setting's own masked table" in line)
    assert "mice wins on: ml-100k/items year:nrmse" in other and "Goal" not in other
    assert "LLM vs miceforest on the text-carried columns" in text  # no miceforest reference ran: the plain pair


def test_the_report_names_the_references_and_the_shares_the_shared_fit_trained_on():
    from recllm.bench.impute.report import _imputation_tables, _training_shares

    rows = []
    for seed in (0, 1):
        for imputer, observed, held in (("llm", 40, 4), ("mice-shared", 40, 0), ("mice", 80, 0)):
            info = {"fit_cells": {"year": [observed, 100]}, "shared_fit": imputer != "mice",
                    "held_out": {"year": held} if held else {}, "seconds": 1.0, "cells": 20}
            rows.append({"dataset": "ml-100k", "seed": seed, "setting": ["mcar", 0.2], "imputer": imputer,
                         "tasks": {}, "info": {"ml-100k/items": info},
                         "scores": {"ml-100k/items": {"year:nrmse": 0.5}}})
    shares = _training_shares(rows)
    assert "| ml-100k | 0 | ml-100k/items | year | 40% | 36% | 80% |" in shares
    assert "| ml-100k | 1 | ml-100k/items | year | 40% | 36% | 80% |" in shares
    assert "| cells | setting | llm | MICE (shared-fit cells) | mice |" in _imputation_tables(
        rows, ["llm", "mice-shared", "mice"], ["MCAR 20%"])
    assert _training_shares([r for r in rows if r["imputer"] != "llm"]).startswith("_(no shared LLM fit")
    assert "max_train_examples" not in shares
    rows[0]["info"]["ml-100k/items"].update(examples=48, rows=1682)  # a capped fit (--max-rows) says so
    assert "ml-100k ml-100k/items: 48 of 1682 rows" in _training_shares(rows)


def test_fine_tune_seconds_are_the_original_fits_with_their_machine():
    """The cost table averages each fine-tune's own seconds from its fit record (never a reused adapter's load time)
    and names the CPU and threads that ran it; shared reuses in one process are not fits."""
    from recllm.bench.impute.report import _cost_table, _llm_training_table

    def info(fit_seconds, load_seconds, fitted_here, reused):
        return {"seconds": load_seconds + 5, "cells": 10, "fallbacks": 0, "fit_seconds": fit_seconds,
                "load_seconds": load_seconds, "fitted_here": fitted_here, "adapter_reused": reused,
                "transform_seconds": 5.0, "fit_cpu": "Some CPU", "fit_threads": 2, "shared_fit": True}

    rows = [{"dataset": "advertising", "seed": 0, "setting": ["mcar", 0.2], "imputer": "llm",
             "info": {"advertising/users": info(1000.0, 1000.0, True, False)}},
            {"dataset": "advertising", "seed": 0, "setting": ["mcar", 0.4], "imputer": "llm",
             "info": {"advertising/users": info(1000.0, 1000.0, False, False)}},
            {"dataset": "advertising", "seed": 1, "setting": ["mcar", 0.2], "imputer": "llm",
             "info": {"advertising/users": info(2000.0, 1.0, True, True)}}]  # loaded from the cache in 1 s
    line = next(l for l in _cost_table(rows).splitlines() if "advertising/users" in l)
    assert "| 2 | 1500.0 | Some CPU, 2 thread(s) x2 |" in line
    table = _llm_training_table(rows)
    assert "| 2000 | Some CPU, 2 thread(s) |" in table and "all (shared fit)" in table


def test_the_training_table_names_the_fine_tunes_that_validated_below_the_column_mean():
    """A chosen epoch scoring under 0 (worse than the numeric columns' means on held-out observed cells) is named."""
    from recllm.bench.impute.report import _llm_training_table

    def row(seed, curve, chosen):
        return {"dataset": "advertising", "seed": seed, "setting": ["mcar", 0.2], "imputer": "llm",
                "info": {"advertising/users": {"validation_curve": curve, "chosen_epoch": chosen}}}

    text = _llm_training_table([row(0, [-0.06, -0.15], 1), row(1, [0.03, -0.12], 1), row(2, [-0.2, 0.01], 2)])
    assert "1 of 3 fine-tunes here (advertising seed 0 advertising/users)" in text


def test_the_report_lists_its_departures_from_the_paper():
    from recllm.bench.impute.report import departures

    lines = departures(BenchConfig.preset(False))
    assert any("instead of a distilled GPT-2" in d for d in lines)
    assert any("MCAR 20% only" in d for d in lines) and any("miceforest and GReaT added" in d for d in lines)
    assert "the LLM imputer at every setting" in " ".join(departures(BenchConfig.preset(False, llm_fit="shared")))


def test_each_peer_is_compared_with_mice_too():
    """'Say plainly where each wins': miceforest and GReaT against MICE, shown without a goal."""
    rows = _rows(llm_year=0.5, mice_year=0.9, llm_genres=0.6, mice_genres=0.6, great_year=0.2)
    text = verdict_paragraph(rows, ["MCAR 20%"])
    great = next(line for line in text.splitlines() if "GReaT vs MICE overall" in line)
    assert "great wins on: ml-100k/items year:nrmse (MCAR 20%)" in great and "Goal" not in great
    assert "miceforest vs MICE" not in text  # miceforest did not run
    advertising = [{**row, "dataset": "advertising", "scores": {"advertising/users": {"age:nrmse": 1.0}}}
                   for row in rows]
    assert "ml-100k/items: year" not in verdict_paragraph(advertising, ["MCAR 20%"])  # no note on unscored columns
