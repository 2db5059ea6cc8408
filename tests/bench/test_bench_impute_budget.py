"""``recllm bench impute`` within a time budget: GReaT's one budget rule (steps, samples per row, settings), the
shared fit of the fine-tuned imputers (never trained on a cell masked in any setting of its seed), the plan."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recllm.bench.impute.run as bench
from recllm.bench.impute.budget import GREAT_MAX_TRIES, GREAT_SETTINGS, great_budget
from recllm.bench.impute.plan import Rates, format_plan, plan_units
from recllm.bench.impute.report import llm_setup_line, peer_setup_lines
from recllm.bench.impute.run import SETTINGS, BenchConfig, make_imputer
from recllm.bench.impute.tasks import TABLES, TableSpec
from recllm.impute.llm import DEFAULT_SFT
from recllm.impute.registry import IMPUTERS
from tests.impute.test_properties import great_tiny  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def tiny():
    """The 2-layer test llama with the real SmolLM2 tokenizer (GReaT's backbone folder is written from it)."""
    from recllm.llm import tiny_causal_lm

    return tiny_causal_lm(seed=0)


def test_great_budget_is_the_llm_imputers_fine_tune_and_few_samples_per_row():
    config = BenchConfig.preset(False)
    budget = config.great_budget()
    assert budget == great_budget(config) and config.llm_fit == "per-setting" and not config.shares_fit("great")
    assert BenchConfig(llm_fit="shared").shares_fit("great")
    assert (budget.epochs, budget.batch_size, budget.max_steps) == (DEFAULT_SFT.epochs, DEFAULT_SFT.batch_size, 0)
    assert budget.max_retries == GREAT_MAX_TRIES and budget.settings == GREAT_SETTINGS
    assert budget.steps(1001) == DEFAULT_SFT.epochs * math.ceil(1001 / DEFAULT_SFT.batch_size)
    assert BenchConfig(llm_max_epochs=1).great_budget().epochs == 1  # it follows the LLM imputer's epochs
    assert BenchConfig(great_max_steps=7).great_budget().steps(1001) == 7
    imputer = make_imputer("great", TABLES["advertising"][0], 2, config)
    assert (imputer.epochs, imputer.batch_size, imputer.max_steps, imputer.max_retries, imputer.seed) == (
        budget.epochs, budget.batch_size, 0, budget.max_retries, 2)
    other = next(s for s in SETTINGS if s not in GREAT_SETTINGS)
    assert config.runs("great", GREAT_SETTINGS[0]) and not config.runs("great", other) and config.runs("mice", other)
    assert BenchConfig(great_settings=SETTINGS).runs("great", other)
    assert config.cache_parts("great") != BenchConfig(great_settings=SETTINGS).cache_parts("great")
    with pytest.raises(ValueError, match="great_settings"):
        BenchConfig(settings=(("mcar", 0.2),), great_settings=(("mar", 0.2),))


def test_report_states_the_rule_where_great_runs_and_the_peers_fallbacks():
    config = BenchConfig.preset(False)
    rows = [{"imputer": "great", "info": {"t": {"cells": 40, "fallbacks": 6, "sampled_rows": 30, "samples": 41,
                                                "rows_given_up": 2, "how": {"great": 34, "fallback": 6}}}},
            {"imputer": "miceforest", "info": {"t": {"cells": 40, "fallbacks": 0, "how": {"miceforest": 31,
                                                                                          "mean": 9}}}}]
    great, mice = peer_setup_lines(config, rows, ["great", "miceforest"])
    assert config.great_budget().describe() in great and "GReaT runs at MCAR 20% only (not at MCAR 5%," in great
    assert "left 6 of 40 cells to the column statistic (2 of 30 incomplete rows given up" in great
    assert "41 samples" in great and "left 9 of 40 cells to the column statistic" in mice
    assert peer_setup_lines(config, [], []) == ["- GReaT: not run.", "- miceforest: not run."]


def test_great_trains_the_budgets_steps_and_samples_a_row_at_most_its_tries(tiny, great_tiny):
    """A real GReaT fine-tune (tiny model) takes exactly the budget's steps; its fill samples each incomplete row
    at least once and at most ``max_retries`` times, and a row it gives up on leaves its cells to the statistic."""
    spec = TableSpec("t/users", "user_id", categorical=("job",), numeric=("age",), text=(), masked=("age", "job"),
                     mar_driver="job", context="")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"age": rng.integers(20, 60, 10).astype(float), "job": rng.choice(["cook", "nurse"], 10)})
    masked = table.mask(pd.DataFrame({"age": rng.random(10) < 0.4, "job": rng.random(10) < 0.4}))
    config = BenchConfig(llm_max_epochs=2, llm_model=str(great_tiny))
    budget = config.great_budget()
    imputer = make_imputer("great", spec, 0, config)
    imputer.fit(masked)
    assert imputer.train_steps_ == budget.steps(len(masked)) == 2 * math.ceil(10 / DEFAULT_SFT.batch_size)
    few = masked.iloc[:5]
    imputer.transform(few)
    incomplete = int(few.isna().any(axis=1).sum())
    assert incomplete >= 2
    assert imputer.sampled_rows_ == incomplete
    assert incomplete <= imputer.samples_ <= budget.max_retries * incomplete
    assert imputer.report_.how.get("fallback", 0) >= imputer.rows_given_up_  # a given-up row: >= 1 cell each


class _Recording(IMPUTERS["mean"]):
    """A mean imputer standing in for a fine-tuned one: records every frame it is fitted on."""

    fits: list = []

    def __init__(self, name: str = "llm", spec_name: str = "", **kinds) -> None:
        super().__init__(**kinds)
        self.name, self.spec_name = name, spec_name

    def fit(self, frame, y=None):
        type(self).fits.append((self.name, self.spec_name, frame.copy()))
        super().fit(frame)
        self.fit_report_ = {"seconds": 0.0, "examples": len(frame), "cells_per_epoch": 1, "training": "whole-row",
                            "epochs": 1, "epochs_trained": 1, "chosen_epoch": 1, "validation_cells": 0,
                            "validation_curve": [], "adapter_reused": False, "inference_dtype": "float32"}
        self.fit_seconds_, self.train_steps_ = 0.0, 1
        return self

    def transform(self, frame):
        out = super().transform(frame)
        self.sampled_rows_, self.samples_, self.rows_given_up_ = 0, 0, 0
        return out


@pytest.mark.parametrize("llm_fit", ["shared", "per-setting"])
def test_fine_tuned_imputers_never_train_on_a_cell_masked_in_any_setting(shared_data, tmp_path, monkeypatch,
                                                                         llm_fit):
    """With llm_fit="shared" the LLM imputer and GReaT are fitted once per (table, seed), on a table with no cell
    of any setting's mask; per-setting fits see their own masked table. GReaT runs at its budget's settings only."""
    from recllm.data import load

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    monkeypatch.setattr(bench, "peers_available", lambda: {"miceforest": True, "great": True})
    monkeypatch.setattr(bench, "downstream", lambda *a, **k: {"click": {"f1": 0.5, "auc": 0.5}})
    monkeypatch.setattr(_Recording, "fits", [])
    real = bench.make_imputer

    def make(name, spec, seed, config, *args, **kwargs):
        if name in ("llm", "great"):
            return _Recording(name, spec.name, **spec.imputer_kinds())
        return real(name, spec, seed, config)

    monkeypatch.setattr(bench, "make_imputer", make)
    monkeypatch.setattr("recllm.llm.backbone.load_trainable_lm", lambda *a, **k: None)  # the fakes need no model
    config = BenchConfig(datasets=("advertising",), seeds=(3,), imputers=("mean", "llm", "great"), llm_fit=llm_fit)
    assert bench.run_benchmark(config, out=str(tmp_path / "imputation.md"), show_progress=False) == 0
    ds = load("advertising")
    masks = {s: bench.masked_tables(ds, "advertising", s, 3) for s in SETTINGS}
    fits = _Recording.fits
    assert [n for n, *_ in fits].count("great") == 1  # GReaT: MCAR 20% only, fitted once
    # per-setting: the LLM imputer runs where GReaT does (MCAR 20%), one fine-tune there; shared: one for all
    assert [n for n, *_ in fits].count("llm") == 1
    assert config.llm_run_settings() == (SETTINGS if llm_fit == "shared" else (("mcar", 0.2),))
    every = dataclasses.replace(config, llm_settings=SETTINGS)
    assert all(every.runs("llm", s) for s in SETTINGS)
    assert config.runs("llm", ("mnar", 0.2)) == (llm_fit == "shared")
    for name, table, frame in fits:
        trained = frame.notna().to_numpy()
        if llm_fit == "shared":
            for setting in SETTINGS:
                assert not (trained & masks[setting][table][2].to_numpy()).any(), (name, setting)
        else:
            assert any(frame.equals(masks[s][table][1]) for s in SETTINGS)
    text = (tmp_path / "imputation.md").read_text()
    assert "GReaT runs at MCAR 20% only" in text
    stored = (tmp_path / "imputation.runs.jsonl").read_text()
    assert stored.count('"imputer": "great"') == len(GREAT_SETTINGS)
    assert stored.count('"imputer": "mean"') == len(SETTINGS)


def test_plan_counts_a_shared_fit_once_and_great_at_its_settings_only(shared_data, tmp_path, monkeypatch):
    from recllm.bench.runs import RunStore
    from recllm.data import load

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    table = "advertising/users"
    rates = Rates(llm_row_s={table: 0.5}, llm_cell_s={table: 0.1}, great_step_s={table: 3.0},
                  great_fit_s={table: 20.0}, great_fill_row_s={table: 2.0}, imputer_s={(table, "mean"): 1.0},
                  dlrm_s={"advertising": 10.0})
    store = RunStore(tmp_path / "imputation.runs.jsonl")
    shared = BenchConfig(datasets=("advertising",), seeds=(0,), imputers=("mean", "great"), llm_fit="shared")
    units = plan_units(shared, ("mean", "great"), rates, store)
    assert [(u.setting, u.imputer) for u in units if u.imputer == "great"] == [("MCAR 20%", "great")]
    masked, mask = bench.masked_tables(load("advertising"), "advertising", ("mcar", 0.2), 0)[table][1:]
    steps = shared.great_budget().steps(len(masked))
    great = next(u for u in units if u.imputer == "great")
    measure = 3.0 * 16 * 2.0 + 1.5  # the fill measured against the peak (16 sampled rows)
    assert great.seconds == pytest.approx(10 + 20 + steps * 3.0 + int(mask.any(axis=1).sum()) * 2.0 + measure)
    both = BenchConfig(datasets=("advertising",), seeds=(0,), imputers=("great",), great_settings=SETTINGS,
                       llm_fit="shared")
    units = [u for u in plan_units(both, ("great",), rates, store) if u.imputer == "great"]
    assert len(units) == len(SETTINGS)
    fills = [int(bench.masked_tables(load("advertising"), "advertising", s, 0)[table][2].any(axis=1).sum()) * 2.0
             for s in SETTINGS]
    assert sum(u.seconds for u in units) == pytest.approx(len(SETTINGS) * (10 + measure) + 20 + steps * 3.0
                                                          + sum(fills))

    rates.load_average = 8.0
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    text = format_plan(units, rates)
    total = sum(u.seconds for u in units)
    assert f"on an idle machine roughly ~{total / 4 / 3600:.1f} h" in text or \
        f"on an idle machine roughly ~{total / 4 / 60:.1f} min" in text
    assert "the probe had about 25% of its cores" in text  # no measured share: the load average's
    rates.load_average = 1.5
    assert "idle machine" not in format_plan(units, rates)
    rates.cpu_share = 0.1  # measured: a niced probe beside busy jobs gets less than the load average says
    assert f"on an idle machine roughly ~{total / 10 / 60:.1f} min" in format_plan(units, rates)
    rates.cpu_share = 0.99
    assert "idle machine" not in format_plan(units, rates)


TWO = (("mcar", 0.05), ("mcar", 0.2))


class SessionEnded(BaseException):
    """The session's end (a kill or Ctrl-C, not an error of the unit): it stops the whole run."""


def _fake_llm_run(monkeypatch, fail_at=None):
    """run_benchmark's LLM as the recording mean imputer (no model); ``fail_at``: a masked table size (cells) whose
    fill raises, as an interrupted session would stop."""
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    monkeypatch.setattr(bench, "downstream", lambda *a, **k: {"click": {"f1": 0.5, "auc": 0.5}})
    monkeypatch.setattr(_Recording, "fits", [])
    real = bench.make_imputer

    class Failing(_Recording):
        def transform(self, frame):
            if fail_at is not None and int(frame.isna().to_numpy().sum()) >= fail_at:
                raise SessionEnded
            return super().transform(frame)

    def make(name, spec, seed, config, *args, **kwargs):
        return Failing(name, spec.name, **spec.imputer_kinds()) if name == "llm" else real(name, spec, seed, config)

    monkeypatch.setattr(bench, "make_imputer", make)
    monkeypatch.setattr("recllm.llm.backbone.load_trainable_lm", lambda *a, **k: None)


def _llm_rows(path):
    import json

    rows = [json.loads(line)["row"] for line in path.read_text().splitlines() if '"key"' in line]
    return [r for r in rows if r["imputer"] == "llm"]


def test_a_shared_fit_group_is_stored_whole_or_not_at_all(shared_data, tmp_path, monkeypatch):
    """The LLM's (data set, seed) is one process's fit and fills: an interrupted group stores none of its rows, a
    group found partly stored (or from two fits) is rerun whole, with one fit, its rows under one fit_group."""
    from recllm.bench.runs import RunStore

    out, store_path = str(tmp_path / "imputation.md"), tmp_path / "imputation.runs.jsonl"
    config = BenchConfig(datasets=("advertising",), seeds=(3,), settings=TWO, imputers=("mean", "llm"),
                         llm_fit="shared")
    _fake_llm_run(monkeypatch, fail_at=500)  # MCAR 5% masks 250 cells, MCAR 20% 1000: the second setting fails
    with pytest.raises(SessionEnded):
        bench.run_benchmark(config, out=out, show_progress=False)
    assert [n for n, *_ in _Recording.fits] == ["llm"]  # fitted, the first setting filled ...
    assert _llm_rows(store_path) == []  # ... yet nothing of the group is stored
    _fake_llm_run(monkeypatch)
    assert bench.run_benchmark(config, out=out, show_progress=False) == 0
    rows = _llm_rows(store_path)
    assert len(rows) == 2 and len({r["fit_group"] for r in rows}) == 1
    assert [n for n, *_ in _Recording.fits] == ["llm"]
    # a later session finds one setting stored by another fit (e.g. an older partial run): all rerun, one fit
    keys = [key for _, key in bench.group_keys("llm", "advertising", 3, config)]
    store = RunStore(store_path)
    store.put(keys[0], {**store.get(keys[0]), "fit_group": "another"})
    _fake_llm_run(monkeypatch)
    assert bench.run_benchmark(config, out=out, show_progress=False) == 0
    rows = _llm_rows(store_path)
    assert [n for n, *_ in _Recording.fits] == ["llm"] and len({r["fit_group"] for r in rows}) == 1
    assert "another" not in {r["fit_group"] for r in rows}
    _fake_llm_run(monkeypatch)  # whole now: nothing is fitted again
    assert bench.run_benchmark(config, out=out, show_progress=False) == 0 and _Recording.fits == []


def test_a_failing_unit_is_reported_not_stored_and_the_units_after_it_still_run(shared_data, tmp_path, monkeypatch):
    """One unit's error (a peer library's, memory) must not stop a campaign of hours: it is named on one line and in
    the report, nothing of it is stored, the other units run and are stored, the exit status says it failed."""
    out, store_path = str(tmp_path / "imputation.md"), tmp_path / "imputation.runs.jsonl"
    config = BenchConfig(datasets=("advertising",), seeds=(3,), settings=TWO, imputers=("mean", "llm", "zero"))
    _fake_llm_run(monkeypatch)
    real = bench.impute_tables

    def failing(name, *args, **kwargs):
        if name == "mean":
            raise ValueError("lightgbm said no\nsecond line")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(bench, "impute_tables", failing)
    assert bench.run_benchmark(config, out=out, show_progress=False) == 1
    stored = [json.loads(line)["row"] for line in store_path.read_text().splitlines() if '"key"' in line]
    assert {r["imputer"] for r in stored} == {"none", "zero", "llm"}  # everything but the failing unit
    text = Path(out).read_text()
    assert "FAILED (not stored; a rerun tries it again): advertising seed 3 MCAR 5% mean: ValueError: lightgbm " \
           "said no" in text and "second line" not in text
    monkeypatch.setattr(bench, "impute_tables", real)  # fixed: the rerun computes only what is missing
    _fake_llm_run(monkeypatch)
    assert bench.run_benchmark(config, out=out, show_progress=False) == 0 and _Recording.fits == []
    assert "FAILED" not in Path(out).read_text()


def test_the_plan_counts_the_shared_fit_while_any_setting_is_missing(shared_data, tmp_path, monkeypatch):
    from recllm.bench.runs import RunStore

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute",))
    table = "advertising/users"
    rates = Rates(llm_row_s={table: 0.5}, llm_cell_s={table: 0.1}, imputer_s={(table, "mean"): 1.0},
                  dlrm_s={"advertising": 10.0})
    config = BenchConfig(datasets=("advertising",), seeds=(0,), settings=TWO, imputers=("llm",), llm_fit="shared")
    store = RunStore(tmp_path / "imputation.runs.jsonl")
    keys = [key for _, key in bench.group_keys("llm", "advertising", 0, config)]
    unit = dict.fromkeys(bench.UNIT_FIELDS)  # the fields every stored unit row holds (the plan reads only fit_group)
    store.put(keys[0], {**unit, "fit_group": "g"})  # the first setting stored, the second not
    units = [u for u in plan_units(config, ("llm",), rates, store) if u.imputer == "llm"]
    assert [u.stored for u in units] == [False, False]  # the group reruns whole
    fresh = [u for u in plan_units(config, ("llm",), rates, RunStore(tmp_path / "empty.runs.jsonl"))
             if u.imputer == "llm"]
    assert [u.seconds for u in units] == [u.seconds for u in fresh] and units[0].seconds > units[1].seconds
    store.put(keys[1], {**unit, "fit_group": "g"})
    assert [u.stored for u in plan_units(config, ("llm",), rates, store) if u.imputer == "llm"] == [True, True]
    store.put(keys[1], {**unit, "fit_group": "h"})  # two fits: not a group
    assert [u.stored for u in plan_units(config, ("llm",), rates, store) if u.imputer == "llm"] == [False, False]


def test_shared_fit_references_fit_the_llms_table_and_fill_each_setting(shared_data, tmp_path, monkeypatch):
    """MICE (shared-fit cells) is fitted on the union-masked table the LLM trains on and fills each setting's
    masked table; its rows record the cells its fit saw, scores only (no DLRM); without the shared fit it is absent."""
    import json

    from recllm.data import load

    _fake_llm_run(monkeypatch)
    config = BenchConfig(datasets=("advertising",), seeds=(3,), settings=TWO, imputers=("mice", "llm"),
                         llm_fit="shared")
    assert config.unit_imputers(("mice", "llm")) == ("mice", "mice-shared", "llm")
    assert BenchConfig(llm_fit="per-setting").unit_imputers(("mice", "llm")) == ("mice", "llm")
    assert bench.run_benchmark(config, out=str(tmp_path / "imputation.md"), show_progress=False) == 0
    rows = [json.loads(line)["row"] for line in (tmp_path / "imputation.runs.jsonl").read_text().splitlines()
            if '"key"' in line]
    ds = load("advertising")
    union = bench.union_tables(ds, "advertising", TWO, 3)["advertising/users"]
    for setting in TWO:
        masked = bench.masked_tables(ds, "advertising", setting, 3)["advertising/users"][1]
        by = {r["imputer"]: r for r in rows if r["setting"] == list(setting)}
        for name, table in (("mice-shared", union), ("llm", union), ("mice", masked)):
            cells = by[name]["info"]["advertising/users"]["fit_cells"]
            assert cells == {c: [int(table[c].notna().sum()), len(table)] for c in table.columns if c in cells}
        assert by["mice-shared"]["tasks"] == {} and by["mice-shared"]["scores"]["advertising/users"]
        assert by["mice-shared"]["info"]["advertising/users"]["cells"] == int(masked.isna().to_numpy().sum())
    text = (tmp_path / "imputation.md").read_text()
    assert "MICE (shared-fit cells)" in text and "## What the shared fits trained on" in text


def test_library_versions_are_in_every_key_and_row(monkeypatch):
    config = BenchConfig()
    versions = bench.library_versions()
    assert set(versions) >= {"torch", "transformers", "peft", "numpy", "pandas", "scikit-learn", "miceforest",
                             "be-great"} and versions["numpy"] == np.__version__
    monkeypatch.setattr(bench, "VERSIONED", ("numpy", "no-such-distribution"))
    assert bench.library_versions() == {"numpy": np.__version__, "no-such-distribution": None}
    before = {name: config.cache_parts(name) for name in ("mice", "llm", "great", "mice-shared")}
    monkeypatch.setattr(bench, "library_versions", lambda: {**versions, "torch": "0.0-other"})
    assert all(config.cache_parts(name) != before[name] for name in before)
    row = bench.unit_row("advertising", 0, ("mcar", 0.2), "mean", None, {})
    assert row["versions"]["torch"] == "0.0-other"


def test_miceforest_fills_with_its_prediction_and_the_header_names_the_peers_versions(shared_data, tmp_path):
    """Scored against point estimators, miceforest gives a point fill too (not a draw among matched values); the
    report header's versions line names the peer packages that ran."""
    from recllm.bench.impute.report import write_imputation_report
    from recllm.bench.impute.run import make_imputer
    from recllm.bench.impute.tasks import TABLES
    from recllm.bench.reporting import ReportTarget
    from recllm.eval.report import report_header

    pytest.importorskip("miceforest")
    imputer = make_imputer("miceforest-shared", TABLES["advertising"][0], 3, BenchConfig.preset(True))
    assert imputer.mean_match_candidates == 0 and imputer.seed == 3
    header = report_header("t", "cmd", more_versions={"miceforest": "6.0.3", "be-great": None})
    assert ", miceforest 6.0.3, be-great not installed" in header.splitlines()[-1]
    config = BenchConfig.preset(True, datasets=("advertising",), imputers=("mean", "miceforest"))
    path = write_imputation_report(config, [], [], 1.0, ReportTarget(tmp_path / "imputation.md", "abc"), "cmd")
    versions = next(line for line in path.read_text().splitlines() if line.startswith("- versions:"))
    assert ", miceforest " in versions and ", lightgbm " in versions and "be-great" not in versions


def test_the_cli_runs_the_llm_imputer_at_every_setting_only_when_asked(placeholder_data, monkeypatch, tmp_path):
    import recllm.bench.impute.run as run
    from recllm.bench import main

    seen = []
    monkeypatch.setattr(run, "run_benchmark", lambda config, **kw: seen.append(config) or 0)
    args = ["--quiet", "--allow-dirty", "--out", str(tmp_path / "imputation.md")]
    assert main("impute", args) == 0 and main("impute", args + ["--llm-all-settings"]) == 0
    default, every = seen
    assert default.llm_fit == "per-setting" and default.llm_run_settings() == (("mcar", 0.2),)
    assert every.llm_run_settings() == tuple(default.settings)
    assert main("impute", args + ["--great-all-settings"]) == 0  # GReaT everywhere leaves the LLM where it was
    assert seen[-1].llm_run_settings() == (("mcar", 0.2),) and len(seen[-1].great_budget().settings) == 5
    assert "MCAR 20% only" in llm_setup_line(default) and "at every setting" in llm_setup_line(every)
    with pytest.raises(ValueError, match="llm_settings narrows the settings only with llm_fit='per-setting'"):
        BenchConfig(llm_fit="shared", llm_settings=(("mcar", 0.2),))
