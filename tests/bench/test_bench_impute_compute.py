"""The impute benchmark's fill throughput against the peak: a sample filled afresh (never from the answer cache),
timed and counted, and the report's table of it (hand-checked shares)."""

import numpy as np
import pytest

from recllm.bench.impute.compute import NOT_MEASURED, fill_compute, fill_share, guarded_fill_compute
from recllm.bench.impute.report import _cost_table, _fill_compute_table
from recllm.llm.cache import DiskCache
from tests.impute.conftest import make_table, mask_cells
from tests.impute.test_llm import imputer as llm_imputer
from tests.impute.test_peers import great_imputer
from tests.impute.test_properties import great_tiny  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("recllm.llm.hardware.measure_matmul_flops", lambda *a, **k: 5e10)  # 50 GFLOP/s, no wait


@pytest.fixture(scope="module")
def tiny():
    from recllm.llm import tiny_causal_lm

    return tiny_causal_lm(seed=0)


def test_an_llm_fill_is_sampled_afresh_even_when_its_answers_are_cached(tiny, tmp_path):
    masked, _ = mask_cells(make_table(n=24), ["age", "occupation"], 0.3)
    cache = DiskCache(tmp_path / "answers.sqlite")
    imputer = llm_imputer(tiny, cache=cache).fit(masked)
    imputer.transform(masked)
    imputer.transform(masked)
    assert imputer.report_.how["cache_hits"] == imputer.report_.n_filled  # the unit's own fill can be lookups
    facts = fill_compute(imputer, masked, seed=0, rows=4)
    assert imputer.report_.how.get("cache_hits", 0) == 0  # the sample's passes computed every answer
    assert imputer.cache_ is cache  # and the cache is back for what follows
    assert facts["fill_sample_rows"] == 4 and facts["fill_sample_cells"] == imputer.report_.n_filled
    assert facts["fill_gflop_per_cell"] > 0 and facts["fill_sample_seconds"] > 0
    assert facts["fill_peak_gflops"] == 50 and facts["fill_dtype"] == "float32" and facts["fill_threads"] >= 1
    assert fill_share(facts) == pytest.approx(facts["fill_sample_cells"] / facts["fill_sample_seconds"]
                                              * facts["fill_gflop_per_cell"] / 50)
    assert fill_compute(imputer, masked.dropna(), seed=0) == {NOT_MEASURED: "no gap to fill"}


def test_a_great_fill_is_sampled_and_counted(great_tiny):  # noqa: F811
    masked, _ = mask_cells(make_table(n=12), ["age", "occupation"], 0.3)
    imputer = great_imputer(great_tiny).fit(masked)
    facts = fill_compute(imputer, masked, seed=1, rows=2)
    assert facts["fill_sample_rows"] == 2 and facts["fill_gflop_per_cell"] > 0 and facts["fill_dtype"] == "float32"
    assert imputer.sampled_rows_ == 2  # the imputer now describes the sample: a unit reads its own counts first


def _info(cells: int, seconds: float, gflop: float, peak: float, **more) -> dict:
    return {"seconds": 10.0, "cells": 100, "fallbacks": 0, "transform_seconds": 5.0, "fit_seconds": 60.0,
            "fill_sample_cells": cells, "fill_sample_seconds": seconds, "fill_gflop_per_cell": gflop,
            "fill_peak_gflops": peak, "fill_dtype": "float32", "fill_cpu": "Test CPU", "fill_threads": 1,
            "adapter_reused": False, **more}


def test_the_fill_table_gives_each_runs_share_of_its_own_peak():
    rows = [{"imputer": "llm", "info": {"t": _info(20, 4.0, 3.0, 100.0)}},  # 5 cells/s x 3 GFLOP / 100 = 15%
            {"imputer": "llm", "info": {"t": _info(10, 1.0, 9.0, 200.0)}},  # 10 cells/s x 9 / 200 = 45%
            {"imputer": "great", "info": {"t": {"seconds": 1.0, "cells": 5, "transform_seconds": 1.0}}},
            {"imputer": "mean", "info": {"t": {"seconds": 1.0, "cells": 5}}}]
    text = _fill_compute_table(rows)
    llm = next(line for line in text.splitlines() if "| LLM" in line or "| llm" in line)
    cells = [c.strip() for c in llm.strip("|").split("|")]
    # 30 cells in 5 s; 20 x 3 + 10 x 9 = 150 GFLOP: 5 GFLOP a cell, 30 GFLOP/s; shares 15% and 45%, mean 30%
    assert cells[2:8] == ["2 of 2", "30", "6.0", "5", "30.0", "30.0% (15.0%-45.0%)"]
    assert "100 GFLOP/s (float32, Test CPU, 1 thread(s)); 200 GFLOP/s" in llm
    great = next(line for line in text.splitlines() if "0 of 1" in line)
    assert "mean" not in text.split("\n\n", 1)[1]  # imputers that fine-tune nothing have no row
    assert np.isclose(fill_share(_info(20, 4.0, 3.0, 100.0)), 0.15)
    assert "not measured (runs stored before it was)" in great
    assert fill_share({"fill_sample_cells": 3}) is None


def test_the_cost_table_marks_fills_answered_from_the_cache():
    rows = [{"imputer": "llm", "info": {"t": _info(1, 1.0, 1.0, 1.0, how={"cache_hits": 25})}},
            {"imputer": "llm", "info": {"t": _info(1, 1.0, 1.0, 1.0, how={})}}]
    line = next(line for line in _cost_table(rows).splitlines() if line.startswith("| t |"))
    assert "20.0 (12% cached)" in line  # 200 cells in 10 s of fill; 25 of 200 answers were lookups


def test_a_failed_measurement_keeps_the_run_and_is_named_in_the_report(monkeypatch, capsys):
    monkeypatch.setattr("recllm.llm.hardware.count_flops", lambda fn: (_ for _ in ()).throw(RuntimeError("no op")))
    masked, _ = mask_cells(make_table(n=12), ["age"], 0.3)
    facts = guarded_fill_compute(_Echo(), masked)
    assert facts == {NOT_MEASURED: "RuntimeError: no op"} and "the run is kept" in capsys.readouterr().out
    text = _fill_compute_table([{"imputer": "llm", "info": {"t": {**facts, "seconds": 1.0, "cells": 3}}}])
    assert "not measured (RuntimeError: no op)" in text


class _Echo:
    """A fitted imputer stand-in whose fill returns its input."""

    def transform(self, frame):
        return frame


class _PerfectGReaT:
    """A fitted 'great' stand-in that fills every gap with the true value and keeps GReaT's per-fill counts."""

    fills_cells = True

    def __init__(self, truth):
        self.truth, self.fit_seconds_, self.train_steps_ = truth, 1.0, 1

    def fit(self, frame):
        return self

    def transform(self, frame):
        from recllm.impute.base import ImputationReport

        self.report_ = ImputationReport(method="great", n_rows_in=len(frame), n_rows_out=len(frame), seconds=0.5,
                                        filled={c: int(n) for c, n in frame.isna().sum().items() if n})
        self.sampled_rows_ = int(frame.isna().to_numpy().any(axis=1).sum())
        self.samples_, self.rows_given_up_ = self.sampled_rows_, 0
        return self.truth.loc[frame.index].copy()


@pytest.mark.integration
def test_a_unit_records_its_own_fill_before_the_sample_passes(shared_data, monkeypatch):
    import recllm.bench.impute.run as bench
    from recllm.bench.impute.tasks import TABLES
    from recllm.data import load

    spec = TABLES["advertising"][0]
    tables = bench.masked_tables(load("advertising"), "advertising", ("mcar", 0.2), 0)
    truth, masked, _ = tables[spec.name]
    monkeypatch.setattr(bench, "make_imputer", lambda *a, **k: _PerfectGReaT(truth))
    config = bench.BenchConfig.preset(True, datasets=("advertising",))
    info = bench.impute_tables("great", "advertising", tables, 0, config, specs=[spec])["info"][spec.name]
    incomplete = int(masked.isna().to_numpy().any(axis=1).sum())
    assert incomplete > 16 and info["sampled_rows"] == incomplete  # the unit's fill, not the 16-row sample's
    assert info["cells"] == int(masked.isna().to_numpy().sum())
    assert info[NOT_MEASURED] == "no FLOP counted in this process (the fill ran elsewhere)"  # no torch model ran
    skipped = bench.impute_tables("great", "advertising", tables, 0, config, specs=[spec], measure_fill=False)
    assert NOT_MEASURED not in skipped["info"][spec.name]
