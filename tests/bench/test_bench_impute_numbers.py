"""recllm.bench.impute_numbers: the report table marks the best decoding per numeric column."""

import recllm.bench.impute_numbers as bench_module


def test_report_body_rows_and_best():
    bench = bench_module
    names = [*bench.REFERENCES, *bench.DECODINGS]
    users = {"age:nrmse": 1.0, "gender:accuracy": 0.5}
    items = {"year:nrmse": 0.5}
    results = {"ml-100k": {n: {"scores": {"ml-100k/users": dict(users, **{"age:nrmse": 1.0 + i / 10}),
                                          "ml-100k/items": dict(items, **{"year:nrmse": 0.9 - i / 10})},
                               "seconds": 10.0 * i, "cells": 7} for i, n in enumerate(names)}}
    text = bench.report_body(results, seed=0)
    assert "| ml-100k/users: age | **1.000** | 1.100 | 1.200 | 1.300 | 1.400 |" in text  # mean best
    assert "| ml-100k/items: year | 0.900 | 0.800 | 0.700 | 0.600 | **0.500** |" in text  # expected-grid best
    assert "gender" not in text.split("## Cost")[0]  # categorical columns are not numbers
    assert "| ml-100k | expected-grid | 7 | 40 |" in text


def test_each_decoding_is_stored_and_a_later_sitting_computes_nothing(tmp_path, monkeypatch):
    import numpy as np

    import recllm.bench.impute.run as run
    import recllm.data as data
    from recllm.bench import impute_numbers
    from recllm.bench.runs import RunStore

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.impute_numbers",))
    monkeypatch.setattr(data, "load", lambda name: None)
    monkeypatch.setattr(data, "data_files", lambda names: [])
    monkeypatch.setattr(run, "masked_tables", lambda *a: {})
    calls = []

    def fake_impute(name, dataset, tables, seed, config, **kw):
        assert name != "llm" or kw["cache"] is not None and len(kw["cache"]) == 0  # an empty answer cache
        calls.append((name, kw.get("numeric_decoding")))
        return {"scores": {"t": {"age:nrmse": np.float32(0.5)}},
                "info": {"t": {"transform_seconds": 2.0, "cells": 10, "training": "whole-row", "train_cells": 90,
                               "chosen_epoch": 2, "epochs_trained": 3, "validation_cells": 8,
                               "inference_dtype": "float32"}}}

    monkeypatch.setattr(run, "impute_tables", fake_impute)
    store = RunStore(tmp_path / "imputation-numbers.runs.jsonl")
    first = impute_numbers.measure("advertising", 0, store)
    assert len(calls) == len(impute_numbers.REFERENCES) + len(impute_numbers.DECODINGS)
    assert first["expected"]["scores"] == {"t": {"age:nrmse": 0.5}} and first["expected"]["seconds"] == 2.0
    assert "whole-row SFT on 90 observed cells per epoch, epoch 2 of 3" in impute_numbers._fits({"advertising": first})
    calls.clear()
    again = impute_numbers.measure("advertising", 0, RunStore(store.path))
    assert calls == [] and again == first
