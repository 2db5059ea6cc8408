"""The `recllm trsr` and `recllm bench trsr` commands are wired up (parsing only; running them needs real models)."""

import json

import pytest

from recllm.cli import build_parser


def test_trsr_commands_parse():
    parser = build_parser()
    args = parser.parse_args(["trsr", "train", "--data", "ml-latest-small", "--out", "run", "--mode", "recurrent"])
    assert args.mode == "recurrent" and args.users == 200 and callable(args.func)
    args = parser.parse_args(["trsr", "summarize", "--data", "x", "--users", "3"])
    assert args.users == 3 and args.mode == "hierarchical"
    args = parser.parse_args(["trsr", "rank", "--run", "run"])
    assert args.rows == 100
    args = parser.parse_args(["bench", "trsr", "--quick", "--seeds", "0", "1", "--lr", "1e-4"])
    assert args.quick and args.seeds == [0, 1] and args.lr == 1e-4 and args.score_dtype == "auto"


@pytest.mark.integration
def test_summarize_command_on_real_data(shared_data, tmp_path, capsys):
    from recllm.cli import main

    out = tmp_path / "s.jsonl"
    code = main(["trsr", "summarize", "--data", "amazon2018-magazine-subscriptions", "--users", "2",
                 "--summary-tokens", "8", "--threads", "1", "--quiet", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 2 and all(r["summary"] for r in rows)


def test_bench_reuses_a_data_sets_stored_results(tmp_path, monkeypatch):
    """A finished data set is stored beside the report; a rerun (even on a fresh machine) does not refit it."""
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    import recllm.trsr.bench as bench
    import recllm.trsr.report as report

    calls, rendered = [], []
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    data_file = tmp_path / "data" / "ml-latest-small" / "x.csv"
    data_file.parent.mkdir(parents=True)
    data_file.write_text("a\n1\n")

    def fake_run_dataset(spec, sizes, *a, first_position=0, **k):
        calls.append((spec.name, sizes.seeds, first_position))
        row = {"method": "sasrec", "seed": sizes.seeds[0], "per_user": {"recall@10": np.array([0.0, 1.0])}}
        return {"dataset": spec.name, "rows": [row], "two_stage": [], "data_files": [data_file],
                "candidates": [str(tmp_path / "cache" / "c.parquet")],
                "speed": {"dtype": "torch.bfloat16", "speedup": np.float64(2.5)}}

    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, **k: SimpleNamespace(name="lm", fingerprint="lm|f32",
                                                                                device="cpu"))
    monkeypatch.setattr(bench, "run_dataset", fake_run_dataset)
    monkeypatch.setattr(report, "render", lambda results, *a: rendered.append(results) or "body")
    monkeypatch.setattr(bench, "mind_available", lambda: False)
    out = tmp_path / "trsr.md"
    for _ in range(2):
        assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"]) == 0
    assert calls == [("ml-latest-small", (0,), 0)]
    first, second = rendered[0][0], rendered[1][0]
    assert np.array_equal(second["rows"][0]["per_user"]["recall@10"], first["rows"][0]["per_user"]["recall@10"])
    assert second["data_files"] == [data_file] and second["speed"]["speedup"] == 2.5
    assert str(tmp_path) not in (tmp_path / "trsr.runs.jsonl").read_text()  # no machine paths in the store
    # another learning rate is another run
    assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"], lr=1e-4) == 0
    assert calls[1:] == [("ml-latest-small", (0,), 0)]
    # more seeds: the stored seed is reused, only the new ones run (one at a time), and the parts are merged
    assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"], seeds=[0, 1, 2]) == 0
    assert calls[2:] == [("ml-latest-small", (1,), 1), ("ml-latest-small", (2,), 2)]
    assert [row["seed"] for row in rendered[-1][0]["rows"]] == [0, 1, 2]
