"""``recllm bench learn``: measuring, the stored runs, the report pieces, a tiny end-to-end run."""

import math

import numpy as np
import pytest

from recllm.bench.learn import content as contents
from recllm.bench.learn.report import interval, write_learn_report
from recllm.bench.learn.run import MINILM_LEARN, PeakMemory, RunResult, model_specs
from recllm.bench.reporting import ReportTarget
from recllm.cli import build_parser


def target(path):
    return ReportTarget(path, "commit abc (test)")


def test_bench_learn_registered():
    args = build_parser().parse_args(["bench", "learn", "--quick"])
    assert args.quick and args.out is None and not args.allow_dirty and callable(args.func)


def test_peak_memory_sees_an_allocation():
    with PeakMemory(interval=0.005) as mem:
        block = np.ones(40 * 2**20 // 8)
        block.sum()
        import time

        time.sleep(0.05)
    del block
    assert mem.peak_mb > 30


def fake_timing(dataset="cyclic", encoder="smollm2", sample=0, seconds=12.5, **measured):
    return contents.ContentTiming(dataset, encoder, 30, 576 if encoder == "smollm2" else 384, 0.5, seconds, sample,
                                  "float32: CPU has no native bf16 matmul (AVX2 only)", 2, "Test CPU 9000",
                                  "2026-12-02 04:00 UTC", **measured)


def fake_measure(dataset, encoder, sample=0, seed=0, show_progress=False):
    return None, fake_timing(dataset.name, encoder, sample)


def fake_run(model, seed, value, dataset="cyclic", split="loo"):
    per_user = {f"{m}@{k}": list(np.full(20, value) + np.linspace(-0.05, 0.05, 20))
                for m in ("hr", "ndcg") for k in (10, 50, 200)}
    return RunResult(dataset, split, seed, model, {k: float(np.mean(v)) for k, v in per_user.items()}, per_user,
                     1.0, 0.1, 3, 2, 12.0, 20)


def test_stored_runs_round_trip_with_their_per_user_metrics(tmp_path):
    from recllm.bench.learn.run import store_run, stored_run
    from recllm.bench.runs import RunStore, run_key

    runs = [fake_run("m", s, 0.3) for s in range(2)]
    for r in runs:
        r.key = run_key(model=r.model, seed=r.seed)
    path = tmp_path / "x.runs.jsonl"
    store = RunStore(path)
    for r in runs:
        store_run(store, r)
    back = stored_run(RunStore(path), runs[1].key)
    assert back.metrics == runs[1].metrics and back.epochs == runs[1].epochs
    assert np.allclose(back.per_user["ndcg@10"], runs[1].per_user["ndcg@10"], atol=1e-6)
    assert stored_run(RunStore(path), run_key(model="m", seed=7)) is None
    assert run_key(model="m", seed=0) != run_key(model="m", seed=1)


def test_interval_is_over_users_of_the_seed_averaged_figures_for_every_model():
    one = interval([fake_run("m", 0, 0.5)], "ndcg@10")
    assert one[1] < 0.5 < one[2]
    # three seeds that differ by a constant: the users' spread is that of one seed, centred on the mean
    three = interval([fake_run("m", s, v) for s, v in enumerate((0.4, 0.5, 0.6))], "ndcg@10")
    assert three[0] == pytest.approx(0.5) and three[2] - three[1] == pytest.approx(one[2] - one[1], rel=0.05)
    # a model without randomness gives every seed the same figure: the same interval as one seed, not zero-wide
    same = interval([fake_run("m", s, 0.5) for s in range(3)], "ndcg@10")
    assert same == pytest.approx(one)


def test_report_writes_tables_and_plot(tmp_path):
    specs = model_specs(quick=True)
    names = [s.name for s in specs]
    results = [fake_run(name, 0, 0.1 + 0.05 * i, split=split)
               for i, name in enumerate(names) for split in ("loo", "cold_start")]
    path = write_learn_report(target(tmp_path / "learn.md"), results, specs, ["cyclic"], [0], ["a note"], 60.0, True,
                              None, tmp_path / "learn.runs.jsonl")
    text = path.read_text()
    assert "### loo (20 test users)" in text and "### cold_start" in text
    assert "LEARN (shared tower)" in text and "SASRec-CE" in text and "a note" in text
    assert "Paired NDCG@10 difference" in text
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    # one seed: the difference is a paired bootstrap over users (each later model scores 0.05 more here)
    learn_i, sasrec_i = names.index("LEARN (shared tower)"), names.index("SASRec-CE")
    gap = 0.05 * (learn_i - sasrec_i)
    learn_v, sasrec_v = 0.1 + 0.05 * learn_i, 0.1 + 0.05 * sasrec_i
    assert f"| cyclic | cold_start | n/a | 1 | {learn_v:.4f} | {sasrec_v:.4f} | {gap:+.4f}" in summary
    assert "| best model |" in summary and f"| {names[-1]} ({0.1 + 0.05 * (len(names) - 1):.4f}) |" in summary
    assert "- source: commit abc (test)" in text
    if (tmp_path / "learn-cyclic.png").exists():
        assert "learn-cyclic.png" in text
    assert not math.isnan(interval([results[0]], "hr@10")[0])


def test_run_benchmark_end_to_end_on_tiny_data(monkeypatch, tmp_path, dataset, content):
    import recllm.bench.learn.run as bench

    # reuse by key only here (tests/bench/test_bench_runs.py checks the code identity): in a working tree that others
    # edit meanwhile, a changed recllm module would rightly make these runs stale
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.learn",))
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))  # the fits' epoch checkpoints go there
    monkeypatch.setattr(bench, "load_dataset", lambda name: dataset)
    monkeypatch.setattr(bench, "content_for", lambda ds, show, encoder="smollm2": (content, 0.0))
    monkeypatch.setattr(contents, "measure_content", fake_measure)
    out = tmp_path / "learn.md"
    assert bench.run_benchmark(quick=True, datasets=["cyclic"], splits=["loo", "cold_start"], epochs=1,
                               models=["popularity", "SASRec-CE", "LEARN (shared tower)"], out=str(out),
                               show_progress=False) == 0
    text = out.read_text()
    assert "### cold_start" in text and "LEARN (shared tower)" in text
    # the time-based cold-start split, its size and (60 users: fewer than 200) its mark
    assert "cold_start is a split in time (`recllm.data.cold_start_split`)" in text
    splits_table = text.split("## Splits", 1)[1].split("\n## ", 1)[0]
    assert "| cyclic | cold_start |" in splits_table and "| **no** |" in splits_table
    assert "test users, not informative)" in text.split("### cold_start", 1)[1].split("\n", 1)[0]
    assert sum('"key"' in line for line in (tmp_path / "learn.runs.jsonl").read_text().splitlines()) == 6
    assert list((tmp_path / "cache" / "bench" / "learn-fits").iterdir()) == []  # stored runs keep no checkpoints
    first = out.read_text().split("## Notes")[0].split("Total benchmark time")[1]

    # a rerun reuses every stored run (nothing is fitted) and reports the same figures
    monkeypatch.setattr(bench, "run_one", lambda *a, **k: pytest.fail("a stored run was refitted"))
    assert bench.run_benchmark(quick=True, datasets=["cyclic"], splits=["loo", "cold_start"], epochs=1,
                               models=["popularity", "SASRec-CE", "LEARN (shared tower)"], out=str(out),
                               show_progress=False) == 0
    second = out.read_text()
    assert second.split("## Notes")[0].split("Total benchmark time")[1].split("\n", 1)[1] == first.split("\n", 1)[1]
    assert "6 of 6 runs reused" in second
    # another setting (the epoch cap) is another run: it is fitted, not taken from the store
    fitted = []
    monkeypatch.setattr(bench, "run_one", lambda spec, *a, **k: fitted.append(spec.name) or pytest.skip("fitted"))
    with pytest.raises(pytest.skip.Exception):
        bench.run_benchmark(quick=True, datasets=["cyclic"], splits=["loo"], epochs=2, models=["SASRec-CE"],
                            out=str(out), show_progress=False)
    assert fitted == ["SASRec-CE"]
    # --fresh refits a stored run from its first epoch: an interrupted fit's checkpoints are removed, not resumed
    calls = []
    monkeypatch.setattr(bench, "forget_fit", lambda key: calls.append(("forget", key)))
    monkeypatch.setattr(bench, "run_one", lambda spec, split, seed, epochs, content, key: calls.append(("fit", key))
                        or pytest.skip("fitted"))
    with pytest.raises(pytest.skip.Exception):
        bench.run_benchmark(quick=True, datasets=["cyclic"], splits=["loo"], epochs=1, models=["SASRec-CE"],
                            out=str(out), show_progress=False, fresh=True)
    assert [c[0] for c in calls] == ["forget", "fit"] and calls[0][1] == calls[1][1]
    with pytest.raises(ValueError, match="unknown model"):
        bench.run_benchmark(quick=True, datasets=["cyclic"], models=["GRU4Rec"], out=str(out))


def test_full_mode_plans_ablations_once_and_variants_on_their_data_sets():
    from recllm.bench.learn.run import (ABLATION_DATASET, UNENGAGED_ITEM_DATASETS, model_specs,
                                    planned_in_full_mode)

    specs = {s.name: s for s in model_specs(quick=False)}
    amazon = UNENGAGED_ITEM_DATASETS[0]
    assert planned_in_full_mode(specs["SASRec-CE"], "ml-latest-small", ablation_seed=False)
    assert planned_in_full_mode(specs["LEARN-ID (ablation)"], ABLATION_DATASET, ablation_seed=True)
    assert not planned_in_full_mode(specs["LEARN-ID (ablation)"], ABLATION_DATASET, ablation_seed=False)
    assert not planned_in_full_mode(specs["LEARN-ID (ablation)"], amazon, ablation_seed=True)
    variant = specs["LEARN + catalogue negatives"]
    assert variant.settings["catalogue_negatives"] > 0
    assert planned_in_full_mode(variant, amazon, ablation_seed=False)
    assert planned_in_full_mode(variant, ABLATION_DATASET, ablation_seed=True)  # the control
    assert not planned_in_full_mode(variant, ABLATION_DATASET, ablation_seed=False)
    assert not planned_in_full_mode(variant, "ml-latest-small", ablation_seed=True)


def test_report_summarises_a_variant_on_its_data_sets(tmp_path):
    import dataclasses

    specs = [dataclasses.replace(s, datasets=("cyclic",)) if s.datasets else s for s in model_specs(quick=True)]
    variant = next(s.name for s in specs if s.datasets)
    results = [fake_run(name, seed, 0.2 + 0.01 * seed if name == variant else 0.1, split="loo")
               for name in ("SASRec-CE", "LEARN (shared tower)", variant) for seed in (0, 1)]
    text = write_learn_report(target(tmp_path / "learn.md"), results, specs, ["cyclic"], [0, 1], [], 1.0, True, None,
                              tmp_path / "learn.runs.jsonl").read_text()
    section = text.split(f"### {variant} against SASRec-CE", 1)[1].split("\n## ", 1)[0]
    assert f"| cyclic | loo | n/a | 2 | 0.2050 | 0.1000 | +0.1050" in section
    assert f"Paired NDCG@10 difference {variant} - SASRec-CE" in text
    # the variant is best on 2 seeds; a model run on fewer seeds than the pair says so
    assert f"| {variant} (0.2050) |" in section
    one_seed = [r for r in results if not (r.model == variant and r.seed == 1)]
    text = write_learn_report(target(tmp_path / "learn.md"), one_seed, specs, ["cyclic"], [0, 1], [], 1.0, True,
                              None, tmp_path / "learn.runs.jsonl").read_text()
    assert f"| {variant} (0.2000, 1 seed) |" in text.split("## Summary", 1)[1]
    assert "runs in this report took" in text


def test_report_labels_each_split_with_its_size_and_note(tmp_path):
    specs = model_specs(quick=True)
    results = [fake_run(s.name, 0, 0.2, split=split) for s in specs for split in ("temporal", "cold_start")]
    note = "only 27 test users (fewer than 200): too few for an informative comparison"
    info = {("cyclic", "temporal"): {"test_users": 27, "test_cases": 27, "valid_cases": 30, "informative": False,
                                     "note": note},
            ("cyclic", "cold_start"): {"test_users": 230, "test_cases": 230, "valid_cases": 41, "informative": True,
                                       "note": ""}}
    text = write_learn_report(target(tmp_path / "learn.md"), results, specs, ["cyclic"], [0], [], 1.0, True, None,
                              tmp_path / "learn.runs.jsonl", split_info=info).read_text()
    section = text.split("### temporal", 1)[1].split("###", 1)[0]
    assert section.startswith(" (27 test users, not informative)") and f"**Not informative**: {note}" in section
    assert "### cold_start (230 test users)\n" in text
    assert f"- cyclic temporal: not informative: {note}" in text
    assert "cold_start is a split in time" in text and "leaked the future" in text
    splits = text.split("## Splits", 1)[1].split("\n## ", 1)[0]
    assert f"| cyclic | temporal | 27 | 27 | 30 | **no** | {note} |" in splits
    assert "| cyclic | cold_start | 230 | 230 | 41 | yes |  |" in splits
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "| cyclic | temporal | 27 test users, not informative | 1 |" in summary
    assert "| cyclic | cold_start | 230 test users | 1 |" in summary
    temporal = next(line for line in summary.splitlines() if "| temporal |" in line)
    assert "no verdict (too few test users)" in temporal and "; not informative)" in temporal  # figures, no verdict
    cold = next(line for line in summary.splitlines() if "| cold_start |" in line)
    assert "no verdict" not in cold and "not informative" not in cold


def test_report_compares_the_encoders_and_tables_their_embedding_time(tmp_path):
    specs = model_specs(quick=True)
    results = [fake_run(name, seed, value + 0.01 * seed, split="cold_start")
               for name, value in (("SASRec-CE", 0.0), ("LEARN (shared tower)", 0.1), (MINILM_LEARN, 0.15))
               for seed in (0, 1, 2)]
    timings = [fake_timing(encoder="minilm", sample=32, seconds=2.0),
               fake_timing(seconds=80.0, gflops=5.0, peak_gflops=50.0)]
    text = write_learn_report(target(tmp_path / "learn.md"), results, specs, ["cyclic"], [0, 1, 2], [], 1.0, False,
                              None, tmp_path / "learn.runs.jsonl", timings=timings).read_text()
    section = text.split("## Content encoder", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| LEARN (shared tower) | cyclic | cold_start"))
    assert "| 3 | 0.1100 ± " in row
    assert row.endswith("| +0.0500 [users +0.0500, +0.0500] [seeds +0.0500, +0.0500] better |")
    times = section.split("### What embedding a catalogue costs", 1)[1]
    lines = [line for line in times.splitlines() if line.startswith("| cyclic")]
    # 5 GFLOP/s of a 50 GFLOP/s peak; a record made before FLOPs were counted leaves both empty
    assert lines[0].startswith("| cyclic | SmolLM2-135M | 30 | 576 | 80.0 | 0.4 | 5.0 | 10.0% | 0.5 | whole catalogue |")
    assert lines[1].startswith("| cyclic | all-MiniLM-L6-v2 | 30 | 384 | 2.0 | 15.0 |  |  | 0.5 | 32 texts, scaled |")
    assert "| float32: CPU has no native bf16 matmul (AVX2 only) | 2 | Test CPU 9000 |" in lines[0]


def test_a_data_folder_is_benchmarked_like_a_data_set(shop_folder, tmp_path, capsys):
    """`recllm bench learn --datasets ./FOLDER`: the user's own files, named by their sha256 in the header."""
    from recllm.cli import main

    out = tmp_path / "report" / "learn.md"
    assert main(["bench", "learn", "--quick", "--datasets", str(shop_folder), "--splits", "loo", "--models",
                 "popularity", "SASRec-CE", "--out", str(out), "--allow-dirty", "--quiet"]) == 0
    text = out.read_text()
    assert "shop/interactions.csv" in text and "shop/items.csv" in text and (out.parent / "learn-shop.png").is_file()
    assert "Departures from the paper" in text and "instead of Baichuan2-7B" in text and "2-layer" in text
    section = text.split(f"## {shop_folder}\n", 1)[1].split("\n## ", 1)[0]
    assert "| SASRec-CE | 1 |" in section and "| popularity | 1 |" in section


def test_a_data_folder_with_a_bad_file_stops_before_any_fit(placeholder_data, shop_folder, tmp_path, monkeypatch, capsys):
    """A named data folder is read before the first fit: its mistake is one line, not a skipped section."""
    import recllm.bench.learn.run as bench
    from recllm.cli import main

    with open(shop_folder / "interactions.csv", "a") as handle:
        handle.write("c99,sku1,yesterday\n")
    monkeypatch.setattr(bench, "run_one", lambda *a, **k: pytest.fail("a model was fitted"))
    out = tmp_path / "report" / "learn.md"
    assert main(["bench", "learn", "--quick", "--datasets", "ml-100k", str(shop_folder), "--splits", "loo",
                 "--models", "popularity", "--out", str(out), "--allow-dirty", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interactions.csv" in err and "line 98" in err and "timestamp" in err
    assert not out.exists()


def test_the_report_says_where_its_stopping_settings_come_from():
    """The defaults were chosen on validation curves (learn-patience.md); anything else is the command line's."""
    from recllm.bench.learn.report import stopping_text
    from recllm.bench.learn.stopping import DEFAULT_PATIENCE, FULL_EPOCHS, QUICK_EPOCHS

    chosen = stopping_text(DEFAULT_PATIENCE, None, quick=False)
    assert f"patience {DEFAULT_PATIENCE}, at most {FULL_EPOCHS} epochs" in chosen and "learn-patience.md" in chosen
    assert stopping_text(DEFAULT_PATIENCE, FULL_EPOCHS, quick=False) == chosen
    assert stopping_text(DEFAULT_PATIENCE + 1, None, quick=False).endswith("as given on the command line")
    assert stopping_text(DEFAULT_PATIENCE, 7, quick=False).endswith("as given on the command line")
    assert stopping_text(DEFAULT_PATIENCE, None, quick=True).endswith(f"at most {QUICK_EPOCHS} epochs, a quick run's cap")


def _fit_cut_off_after_two_epochs(monkeypatch, spec, loo, content, key):
    """Fit run ``key`` of ``spec`` for 3 epochs, the session ending right after epoch 2's checkpoint."""
    import recllm.bench.learn.run as bench
    from recllm.distributed.checkpoint import EpochCheckpoint

    save = EpochCheckpoint.save

    def cut_after_two(self, meta, tensors):
        save(self, meta, tensors)
        if meta["epoch"] == 2:
            raise RuntimeError("the session ended")

    monkeypatch.setattr(EpochCheckpoint, "save", cut_after_two)
    with pytest.raises(RuntimeError, match="the session ended"):
        bench.run_one(spec, loo, 0, 3, content, key=key)
    monkeypatch.setattr(EpochCheckpoint, "save", save)


@pytest.mark.parametrize("model", ["LEARN (shared tower)"])  # SASRec and HSTU share its fit loop
def test_a_fit_cut_off_resumes_from_its_epoch_checkpoint_and_ends_where_one_go_ends(monkeypatch, tmp_path, loo,
                                                                                      content, model):
    """A run's fit keeps epoch checkpoints in the cache (a session may end mid-fit); the same run started again
    resumes after the last checkpointed epoch, says so, and gives the figures of a fit in one go. Storing the run
    removes its checkpoints."""
    import recllm.bench.learn.run as bench

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    spec = next(s for s in model_specs(quick=True) if s.name == model)
    whole = bench.run_one(spec, loo, 0, 3, content, key="a" * 64)
    assert whole.resumed_after == 0 and whole.epochs == 3
    assert 0 < whole.core_share <= 1  # the share of its thread's core the fit had
    _fit_cut_off_after_two_epochs(monkeypatch, spec, loo, content, key="b" * 64)
    resumed = bench.run_one(spec, loo, 0, 3, content, key="b" * 64)
    assert resumed.resumed_after == 2 and resumed.epochs == 3
    assert resumed.metrics == whole.metrics and resumed.per_user == whole.per_user
    # its times are this process's, on the machine it records
    from recllm.hardware import this_process_machine

    assert resumed.machine == this_process_machine() and whole.machine == this_process_machine()
    assert bench.fit_checkpoints("b" * 64).is_dir()
    bench.forget_fit("b" * 64)
    assert not bench.fit_checkpoints("b" * 64).exists() and bench.fit_checkpoints("a" * 64).is_dir()
    popularity = next(s for s in model_specs(quick=True) if s.name == "popularity")
    assert bench.run_one(popularity, loo, 0, 3, None, key="c" * 64).resumed_after == 0  # no epochs: no checkpoints
    assert not bench.fit_checkpoints("c" * 64).exists()


def test_a_fit_cut_off_is_not_resumed_by_other_code(monkeypatch, tmp_path, loo, content, capsys):
    """A run's key holds its settings, data and seed but not its code: epoch checkpoints written by other code (the
    recllm source changed while a fit was cut off) are removed and the fit starts afresh, so no stored run is
    a mix of two codes' epochs."""
    import recllm.bench.learn.run as bench

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    spec = next(s for s in model_specs(quick=True) if s.name == "SASRec-CE")
    whole = bench.run_one(spec, loo, 0, 3, content, key="a" * 64)
    _fit_cut_off_after_two_epochs(monkeypatch, spec, loo, content, key="b" * 64)
    assert (bench.fit_checkpoints("b" * 64) / bench.FIT_CODE_FILE).read_text().strip() == bench.fit_code()
    monkeypatch.setattr(bench, "fit_code", lambda: "0" * 64)  # the source changed
    capsys.readouterr()
    again = bench.run_one(spec, loo, 0, 3, content, key="b" * 64)
    assert "written by other code" in capsys.readouterr().out
    assert again.resumed_after == 0 and again.epochs == 3
    assert again.metrics == whole.metrics and again.per_user == whole.per_user


def test_seconds_per_epoch_counts_only_the_epochs_fitted_after_a_resume():
    from types import SimpleNamespace

    from recllm.bench.learn.run import seconds_per_epoch

    model = SimpleNamespace(history_=[{"seconds": 100.0}, {"seconds": 100.0}, {"seconds": 2.0}, {"seconds": 4.0}],
                            epoch_seconds_=51.5)
    assert seconds_per_epoch(model) == 51.5
    assert seconds_per_epoch(model, resumed_after=2) == 3.0
    # nothing fitted after the resume (cut off while scoring): no figure, rather than the earlier session's epochs
    assert math.isnan(seconds_per_epoch(model, resumed_after=4))
    assert math.isnan(seconds_per_epoch(SimpleNamespace()))


def test_report_names_the_machine_its_times_were_measured_on(tmp_path):
    """One machine: named once in the text. Runs fitted in sessions on different CPUs: each row says which."""
    specs = model_specs(quick=True)
    names = [s.name for s in specs]
    xeon, epyc = {"cpu": "Xeon X", "threads": 1}, {"cpu": "EPYC Y", "threads": 2}
    one = [fake_run(name, 0, 0.2) for name in names]
    for r in one:
        r.machine = xeon
    text = write_learn_report(target(tmp_path / "one.md"), one, specs, ["cyclic"], [0], [], 1.0, True, None,
                              tmp_path / "one.runs.jsonl").read_text()
    assert "Times were measured on Xeon X, 1 thread." in text and "| measured on |" not in text
    # the share of its cores each fit had: n/a for runs stored before it was recorded
    assert "| core share |" in text and "`core share` the share of its torch threads' cores" in text
    assert "| n/a |" in text
    several = [fake_run(name, s, 0.2) for name in names for s in (0, 1)]
    for r in several:
        r.machine = xeon if r.seed == 0 else (epyc if r.model == names[0] else None)
    text = write_learn_report(target(tmp_path / "several.md"), several, specs, ["cyclic"], [0, 1], [], 1.0, True,
                              None, tmp_path / "several.runs.jsonl").read_text()
    assert "fitted on several machines" in text and "| measured on |" in text
    assert f"| {names[0]} | 2 |" in text and "| Xeon X, 1 thread; EPYC Y, 2 threads |" in text
    assert "| Xeon X, 1 thread; not recorded |" in text
    from recllm.bench.learn.report import times_text

    assert times_text([]) == "" and "was not recorded" in times_text([fake_run(names[0], 0, 0.2)])


def test_split_note_counts_test_targets_already_in_their_history():
    """A target that is already in the user's history (a re-consumption, or a duplicate row) is masked with the
    history, so every model misses it: the split table says how many there are."""
    from types import SimpleNamespace

    from recllm.bench.learn.run import describe_split, targets_in_history
    from recllm.data.split import EvalCases

    cases = EvalCases(np.arange(3), [np.array([1, 2]), np.array([3]), np.array([4, 5])],
                      [np.array([2]), np.array([6]), np.array([5, 7])])
    assert targets_in_history(cases) == (2, 4)
    split = SimpleNamespace(info={"test_users": 500}, eval_cases=lambda stage: cases)
    note = describe_split(split)["note"]
    assert note.startswith("2 of the 4 test targets are already in their user's history")
    clean = EvalCases(np.arange(1), [np.array([1])], [np.array([2])])
    assert describe_split(SimpleNamespace(info={"test_users": 500}, eval_cases=lambda stage: clean))["note"] == ""


def test_ablations_run_at_one_seed_whichever_seeds_a_process_is_given(monkeypatch, dataset):
    # the ablation ran at "the first seed given": `--seeds 1` and `--seeds 2` processes (a benchmark split by seed)
    # each fitted every ablation again, runs the full report never shows
    from recllm.bench.learn import run
    from recllm.data import make_split

    monkeypatch.setattr(run, "ABLATION_DATASET", dataset.name)
    specs = run.model_specs(quick=False)
    ablations = {s.name for s in specs if s.ablation}

    def names(seed):
        split = make_split(dataset, "loo", seed=seed)
        return {spec.name for spec, _ in run.unit_keys(split, seed, specs, "sha", 5, quick=False)}

    assert ablations <= names(run.ABLATION_SEED)
    assert not ablations & names(1) and not ablations & names(2)
