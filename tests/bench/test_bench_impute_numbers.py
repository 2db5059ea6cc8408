"""recllm.bench.impute_numbers: the report table marks the best decoding per numeric column (mean ± interval over
seeds), the three decodings share one fine-tune per (data set, seed), stored together."""

import numpy as np
import pytest

import recllm.bench.impute_numbers as bench_module


def _result(i, seed, adapter="a"):
    fit = {"training": "whole-row", "train_cells": 90, "chosen_epoch": 2, "epochs_trained": 3, "validation_cells": 8,
           "inference_dtype": "float32", "fit_seconds": 600.0 + seed, "fit_cpu": "Some CPU", "fit_threads": 1,
           "adapter": adapter}
    return {"scores": {"ml-100k/users": {"age:nrmse": 1.0 + i / 10 + seed / 100, "gender:accuracy": 0.5},
                       "ml-100k/items": {"year:nrmse": 0.9 - i / 10 + seed / 100}},
            "seconds": 10.0 * i + seed, "cells": 7, "fit": {"ml-100k/users": fit, "ml-100k/items": fit}}


def test_report_body_rows_and_best_over_seeds():
    bench = bench_module
    names = [*bench.REFERENCES, *bench.DECODINGS]
    results = {"ml-100k": {seed: {n: _result(i, seed) for i, n in enumerate(names)} for seed in (0, 1, 2)}}
    text = bench.report_body(results)
    # mean over seeds 0, 1, 2 (+0.01 each) and its 95% t-interval: 2.4841 x 0.01 for a spread of 0.01
    assert ("| ml-100k/users: age | **1.010 ± 0.025** | 1.110 ± 0.025 | 1.210 ± 0.025 | 1.310 ± 0.025 | "
            "1.410 ± 0.025 |") in text
    assert ("| ml-100k/items: year | 0.910 ± 0.025 | 0.810 ± 0.025 | 0.710 ± 0.025 | 0.610 ± 0.025 | "
            "**0.510 ± 0.025** |") in text
    assert "gender" not in text.split("## The fine-tunes")[0]  # categorical columns are not numbers
    assert "mean ± 95% t-interval over seeds 0, 1, 2" in text
    assert "| ml-100k | expected-grid | 7 | 41 ± 2 |" in text
    fits = text.split("## The fine-tunes")[1].split("## Cost")[0]
    # the fit once per (data set, seed, table), with its own seconds and machine
    assert fits.count("| ml-100k | 1 | ml-100k/users |") == 1 and fits.count("yes (one adapter)") == 6
    assert "| 601 | Some CPU, 1 thread(s) |" in fits
    results["ml-100k"][2]["expected"] = _result(3, 2, adapter="b")
    assert "NO: the decodings recorded different adapters" in bench.report_body(results)


class SessionEnded(Exception):
    pass


def _fake_measure(monkeypatch, fail_on=None):
    import recllm.bench.impute.run as run
    import recllm.data as data

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute_numbers",))
    monkeypatch.setattr(data, "load", lambda name: None)
    monkeypatch.setattr(data, "data_files", lambda names: [])
    monkeypatch.setattr(run, "masked_tables", lambda *a: {})
    calls = []

    def fake_impute(name, dataset, tables, seed, config, **kw):
        assert name != "llm" or kw["cache"] is not None and len(kw["cache"]) == 0  # an empty answer cache
        if fail_on is not None and kw.get("numeric_decoding") == fail_on:
            raise SessionEnded
        calls.append((name, kw.get("numeric_decoding"), seed))
        return {"scores": {"t": {"age:nrmse": np.float32(0.5)}},
                "info": {"t": {"transform_seconds": 2.0, "cells": 10, "training": "whole-row", "train_cells": 90,
                               "chosen_epoch": 2, "epochs_trained": 3, "validation_cells": 8,
                               "inference_dtype": "float32", "fit_seconds": 30.0, "fit_cpu": "Some CPU",
                               "fit_threads": 1, "adapter": "a"}}}

    monkeypatch.setattr(run, "impute_tables", fake_impute)
    return calls


def test_the_decodings_are_stored_together_per_seed_and_a_later_sitting_computes_nothing(tmp_path, monkeypatch):
    from recllm.bench import impute_numbers
    from recllm.bench.runs import RunStore

    store = RunStore(tmp_path / "imputation-numbers.runs.jsonl")
    calls = _fake_measure(monkeypatch, fail_on="expected-grid")
    with pytest.raises(SessionEnded):  # the third decoding did not finish: no decoding of the seed is stored
        impute_numbers.measure("advertising", 0, store)
    assert [c[1] for c in calls] == [None, None, "generate", "expected"] and len(RunStore(store.path)) == 2
    calls = _fake_measure(monkeypatch)
    first = impute_numbers.measure("advertising", 0, store)
    assert [c[1] for c in calls] == list(impute_numbers.DECODINGS)  # the references were stored
    assert first["expected"]["scores"] == {"t": {"age:nrmse": 0.5}} and first["expected"]["seconds"] == 2.0
    assert len({first[d]["fit_group"] for d in impute_numbers.DECODINGS}) == 1
    assert first["mean"]["versions"]["numpy"] == np.__version__
    other = impute_numbers.measure("advertising", 1, store)  # stored per seed
    assert {c[2] for c in calls} == {0, 1} and other["generate"]["fit_group"] != first["generate"]["fit_group"]
    calls.clear()
    again = impute_numbers.measure("advertising", 0, RunStore(store.path))
    assert calls == [] and again == first
    text = impute_numbers.report_body({"advertising": {0: first, 1: other}})
    assert "whole-row SFT on 90 observed cells per epoch, epoch 2 of 3" in text


def test_seeds_default_to_three_and_are_stored_per_seed(tmp_path, monkeypatch):
    import argparse

    from recllm.bench import impute_numbers

    parser = argparse.ArgumentParser()
    impute_numbers.register_cli(parser.add_subparsers())
    args = parser.parse_args(["impute-numbers", "--seeds", "4", "5"])
    assert args.seeds == [4, 5] and parser.parse_args(["impute-numbers"]).seeds is None
    assert impute_numbers.SEEDS == (0, 1, 2)
