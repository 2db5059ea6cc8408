"""``recllm bench learn --plan``: every run, stored or not, with its estimated minutes; no report checks."""

import json

import pytest

from recllm.bench.learn import plan as planning
from recllm.bench.learn import run as bench
from recllm.bench.learn.run import MINILM_LEARN
from recllm.cli import build_parser

from tests.bench.test_bench_learn_content import fake_bench, fake_measure  # noqa: F401 - fixtures and helpers


def test_plan_lists_stored_and_missing_runs_with_estimates(fake_bench, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "learn.md"
    kw = dict(quick=True, datasets=["cyclic"], splits=["loo", "cold_start"], epochs=7)
    bench.run_benchmark(models=["popularity", "LEARN (shared tower)"], splits=["loo"], datasets=["cyclic"],
                        quick=True, epochs=7, out=str(out), show_progress=False)  # stored, 2 epochs each (the fake)
    capsys.readouterr()
    units = planning.plan_benchmark(out, models=["popularity", "SASRec-CE", "LEARN (shared tower)", MINILM_LEARN],
                                    **kw)
    by = {(u.split, u.model): u for u in units}
    assert len(units) == 8
    assert by[("loo", "popularity")].stored and by[("loo", "LEARN (shared tower)")].stored
    assert by[("loo", "popularity")].minutes == 0 and by[("loo", "LEARN (shared tower)")].minutes == 0
    todo = [u for u in units if not u.stored]
    assert len(todo) == 6 and all(u.minutes > 0 for u in todo if u.model != "popularity")
    # expected epochs: earlier runs of the model (or its encoder twin) on that split, else the epoch cap
    assert by[("loo", MINILM_LEARN)].basis == "2 epochs (earlier runs of LEARN (shared tower))"
    assert by[("cold_start", "SASRec-CE")].basis == "7 epochs (epoch cap)"
    text = capsys.readouterr().out
    assert "cyclic: 2 of 8 runs stored;" in text and "embed with all-MiniLM-L6-v2" in text
    assert "in all: 2 of 8 runs stored; about" in text
    # the probes are kept for the next plan, with the share of their cores they had: it fits nothing
    cached = json.loads((tmp_path / "cache" / "bench" / "learn-speed.json").read_text())
    assert any(k.startswith("embed|") for k in cached) and len(cached) >= 4
    shares = [v for k, v in cached.items() if k.endswith("|share")]
    assert shares and all(0 < v <= 1 for v in shares)
    monkeypatch.setattr("recllm.hardware.load_average", lambda: 99.0)  # busy: even a starved probe is kept
    monkeypatch.setattr(planning, "_probe_split", lambda *a: pytest.fail("probed again"))
    monkeypatch.setattr(planning.contents, "measure_content", lambda *a, **k: pytest.fail("timed again"))
    again = planning.plan_benchmark(out, models=["popularity", "SASRec-CE", "LEARN (shared tower)", MINILM_LEARN],
                                    **kw)
    assert [u.minutes for u in again] == [u.minutes for u in units]
    # a changed training module (a faster loss, say) makes the model probes stale: they are taken again
    monkeypatch.setattr(planning, "training_code", lambda: {"recllm.models.softmax": "changed"})
    with pytest.raises(pytest.fail.Exception, match="probed again"):
        planning.plan_benchmark(out, models=["SASRec-CE"], **kw)


def test_prior_epochs_reads_both_runs_file_layouts(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "learn.runs.jsonl"
    rows = [{"code": "c1", "modules": {"recllm.x": "0"}},
            {"key": "k", "code": "c1", "row": {"dataset": "d", "split": "loo", "model": "m", "epochs": 12}},
            {"dataset": "d", "split": "loo", "model": "m", "epochs": 20, "key": "old"}]
    path.write_text("\n".join(map(json.dumps, rows)) + "\nnot json\n")
    assert dict(planning.prior_epochs(path)) == {("d", "loo", "m"): [12, 20]}


def test_prior_epochs_outlive_the_runs_the_store_drops(tmp_path, monkeypatch):
    """The store drops the runs of other code when it is next written: the epochs a plan read are remembered (per
    runs file, by run key), so the next plan does not fall back to the epoch cap; a refit of the same run key
    replaces its count; another runs file (e.g. the quick report's) has its own."""
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "learn.runs.jsonl"
    old = [{"key": f"k{seed}", "code": "old", "row": {"dataset": "d", "split": "loo", "model": "m", "seed": seed,
                                                      "epochs": 30 + seed}} for seed in (0, 1)]
    path.write_text("\n".join(map(json.dumps, old)) + "\n")
    assert dict(planning.prior_epochs(path)) == {("d", "loo", "m"): [30, 31]}
    new = {"key": "k0", "code": "new", "row": {"dataset": "d", "split": "loo", "model": "m", "seed": 0, "epochs": 8}}
    path.write_text(json.dumps(new) + "\n")  # the old code's runs dropped, seed 0 refitted
    assert dict(planning.prior_epochs(path)) == {("d", "loo", "m"): [8, 31]}
    assert planning.earlier_runs(path)["k1"] == ("d", "loo", "m", 31)
    quick = tmp_path / "learn-quick.runs.jsonl"
    quick.write_text(json.dumps({**new, "key": "q0", "row": {**new["row"], "epochs": 5}}) + "\n")
    assert dict(planning.prior_epochs(quick)) == {("d", "loo", "m"): [5]}  # not mixed with the full report's
    assert dict(planning.prior_epochs(path)) == {("d", "loo", "m"): [8, 31]}


@pytest.mark.parametrize("memo", ["not json", "[1, 2]", '{"x": 3}', '{"%s": {"abc": 3, "k": [1, "s", "m", 2], '
                                  '"j": ["d", "s", "m", true], "i": ["d", "s", "m", 1e400], "ok": ["d", "s", "m", 4]}}'])
def test_an_odd_memo_or_runs_row_is_skipped_not_fatal(tmp_path, monkeypatch, memo):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "learn.runs.jsonl"
    rows = [{"key": k, "row": {"dataset": "d", "split": "s", "model": "m", "epochs": e}}
            for k, e in (("a", "x"), ("b", float("nan")), ("c", [3]), ("e", 2.7), ("f", True), ("g", 0), ("h", 6))]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n[1]\n")
    memo_path = tmp_path / "cache" / "bench" / "learn-epochs.json"
    memo_path.parent.mkdir(parents=True)
    memo_path.write_text(memo.replace("%s", str(path.resolve())))
    expected = [4, 6] if '"ok"' in memo else [6]
    assert dict(planning.prior_epochs(path)) == {("d", "s", "m"): expected}


def test_cli_plan_writes_no_report_and_skips_its_checks(placeholder_data, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(planning, "plan_benchmark", lambda out, **kw: calls.append((out, kw)))
    monkeypatch.setattr("recllm.bench.reporting.source_state",
                        lambda *a, **k: pytest.fail("--plan checked the git tree"))
    args = build_parser().parse_args(["bench", "learn", "--plan", "--datasets", "ml-100k", "--out",
                                      str(tmp_path / "x.md")])
    assert args.func(args) == 0
    assert calls[0][0] == tmp_path / "x.md" and calls[0][1]["datasets"] == ["ml-100k"]
    assert not (tmp_path / "x.md").exists()


def test_a_starved_probe_is_taken_again_once_when_a_core_is_free(fake_bench, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A probe that had a tenth of its cores (niced beside busy jobs) overprices every run: the next plan on a calmer
    machine probes again, once per plan, and the plan gives an idle machine's estimate beside this machine's."""
    import recllm.bench.reporting as reporting

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "learn.md"
    kw = dict(quick=True, datasets=["cyclic"], splits=["loo", "cold_start"], epochs=7, models=["SASRec-CE", "HSTU"])
    monkeypatch.setattr(reporting.ShareClock, "share", lambda self: 0.1)
    monkeypatch.setattr("recllm.hardware.load_average", lambda: 0.2)
    calls = []
    real = planning._probe_split
    monkeypatch.setattr(planning, "_probe_split", lambda *a: calls.append(1) or real(*a))
    planning.plan_benchmark(out, **kw)
    first = len(calls)
    assert first == 2 * 2  # two models x two probe sizes, each once though every unit of a model asks for it
    assert "on an idle machine roughly" in capsys.readouterr().out
    planning.plan_benchmark(out, **kw)  # starved and a core is free: probed again, once
    assert len(calls) == 2 * first
    monkeypatch.setattr(reporting.ShareClock, "share", lambda self: 1.0)
    planning.plan_benchmark(out, **kw)  # retaken (the share stored was 0.1) ...
    planning.plan_benchmark(out, **kw)  # ... and now kept
    assert len(calls) == 3 * first
    assert "idle machine" not in capsys.readouterr().out.split("in all:")[-1]
