"""recllm.bench.learn_catalogue: which catalogue items count as engaged, and the report table."""

import recllm.bench.learn_catalogue as bench_module
from tests.learn.learn_synthetic import with_unengaged_items

from recllm.data.split import cold_start_split, leave_one_out


def test_engaged_items_are_those_in_any_stage():
    bench = bench_module
    data, _ = with_unengaged_items(30)
    for split in (leave_one_out(data), cold_start_split(data)):
        engaged = bench.engaged_items(split)
        assert engaged.shape == (60,)
        assert engaged[:30].all() and not engaged[30:].any()  # held-out cold items are engaged (in test)


def test_report_body_lists_every_row():
    bench = bench_module
    rows = [{"data set": "d", "split": "loo", "catalogue": 60, "engaged items": 30, "model": m,
             "unengaged share of top 10": share, "ndcg@10": 0.1} for m, share in zip(bench.MODELS, (0.0, 0.7, 0.01))]
    text = bench.report_body(rows, seed=0)
    assert "| d | loo | 60 | 30 | LEARN (shared tower) | 0.7000 | 0.1000 |" in text
    assert text.count("| d | loo |") == 3


def test_report_body_sweep_table():
    bench = bench_module
    sweep_rows = [{"data set": "d", "split": "loo", **{str(c): 0.1 + i / 100 for i, c in enumerate(bench.SWEEP)}}]
    text = bench.report_body([], seed=0, sweep_rows=sweep_rows)
    assert "## How many catalogue negatives" in text
    assert "| d | loo | " + " | ".join(f"{0.1 + i / 100:.4f}" for i in range(len(bench.SWEEP))) + " |" in text


def test_report_body_prints_a_split_note_once():
    rows = [{"data set": "d", "split": "temporal", "note": "only 27 test users", "catalogue": 60, "engaged items": 30,
             "model": m, "unengaged share of top 10": 0.1, "ndcg@10": 0.1} for m in bench_module.MODELS]
    text = bench_module.report_body(rows, seed=0)
    assert text.count("**Not informative**: d temporal: only 27 test users") == 1
