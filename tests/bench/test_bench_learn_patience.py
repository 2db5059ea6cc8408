"""recllm.bench.learn_patience: early stopping replayed on a validation curve, the choice, and a tiny end-to-end run."""

import pytest

import recllm.bench.learn.patience_report as bench


def test_stop_under_replays_early_stopping():
    curve = [0.1, 0.2, 0.15, 0.18, 0.25, 0.2, 0.2, 0.2]
    assert bench.stop_under(curve, patience=2, cap=8) == (2, 0.2, 4)  # two epochs without a better figure
    assert bench.stop_under(curve, patience=3, cap=8) == (5, 0.25, 8)
    assert bench.stop_under(curve, patience=3, cap=4) == (2, 0.2, 4)  # the cap stops it first
    assert bench.stop_under([0.3, 0.3, 0.3], patience=2, cap=3) == (1, 0.3, 3)  # ties do not reset the count


@pytest.mark.parametrize("patience,cap,curve", [(0, 5, [0.1]), (2, 0, [0.1]), (2, 5, [])])
def test_stop_under_refuses_nonsense(patience, cap, curve):
    with pytest.raises(ValueError):
        bench.stop_under(curve, patience, cap)


def test_stop_under_matches_a_real_fit():
    """The replay on a never-stopping fit's curve gives the epochs and best epoch of the same fit with patience 2."""
    from recllm.data.split import leave_one_out
    from recllm.models import SASRec
    from tests.learn.learn_synthetic import with_unengaged_items

    data, _ = with_unengaged_items(30)
    split = leave_one_out(data)
    settings = dict(dim=16, n_layers=1, n_heads=1, max_len=10, batch_size=16, max_epochs=30, seed=3,
                    show_progress=False, lr=3e-2)
    long = SASRec(patience=30, **settings).fit(split)
    short = SASRec(patience=2, **settings).fit(split)
    curve = [r["valid_ndcg@10"] for r in long.history_]
    kept, figure, trained = bench.stop_under(curve, 2, 30)
    assert trained < 30  # it did stop early (else the check below proves little)
    assert (kept, trained) == (short.best_epoch_, len(short.history_))
    assert figure == max(r["valid_ndcg@10"] for r in short.history_)


def test_choose_patience_is_the_smallest_within_tolerance():
    rising_late = [0.1] * 4 + [0.2] * 6  # the best comes after 4 flat epochs
    early = [0.2] + [0.1] * 9
    curves = {"a": [rising_late, rising_late], "b": [early, early]}
    assert bench.choose_patience(curves, cap=10, patiences=(3, 5, 10)) == 5
    assert bench.choose_patience({"b": [early]}, cap=10, patiences=(3, 5)) == 3
    assert bench.choose_patience({"a": [rising_late]}, cap=10, patiences=(2, 3)) is None


def test_report_section_names_the_choice_and_the_benchmarks_settings():
    runs = {"SASRec-CE": [{"curve": [0.1, 0.2, 0.3] + [0.25] * 97, "epoch_seconds": 1.0}] * 2}
    text = bench.report_section("d", runs, [0], epochs=100, bench_cap=50, bench_patience=10)
    assert "**Chosen: an epoch cap of 50 and patience 3.**" in text and "not measured" not in text
    assert "uses a cap of 50 and patience 10; what they keep, as a share of the best within the curve: " \
           "SASRec-CE 100.0%." in text
    assert "| SASRec-CE | 50 | 50 (never early) | 0.3000 | 1.0000 | 3.0 | 50.0 |" in text
    assert text.count("| SASRec-CE | 50 | 50 (never early) |") == 1  # patience 50 at a cap of 50: the same row
    assert "| SASRec-CE | 3 3 | 0.3000 | 1.0000 |" in text
    assert bench.report_section("d", runs, [0], epochs=100, bench_cap=50, bench_patience=3).count(", the choice.") == 1


def test_report_section_when_the_cap_binds():
    rising = [0.1 + 0.001 * i for i in range(70)] + [0.169] * 30  # still improving after the 50-epoch cap
    text = bench.report_section("d", {"LEARN": [{"curve": rising, "epoch_seconds": 2.0}]}, [0], epochs=100,
                                bench_cap=50, bench_patience=10)
    assert "**Chosen: an epoch cap of 100 and patience 3.** The curves end at 100 epochs" in text
    assert "`--epochs 200`" in text and "LEARN 88.2%" in text
    assert "| LEARN | 100 | 3 | 0.1690 | 1.0000 | 70.0 | 73.0 |" in text  # rows for the chosen cap too
    assert "| LEARN | 50 | 3 | 0.1490 | 0.8817 | 50.0 | 50.0 |" in text
    flat = [0.1] * 60 + [0.2] * 40
    assert "**Chosen: an epoch cap of 100 and no early stop.**" in bench.report_section(
        "d", {"LEARN": [{"curve": flat, "epoch_seconds": 2.0}]}, [0], epochs=100, bench_cap=50, bench_patience=10)


def test_choose_cap_is_the_smallest_within_tolerance_of_the_whole_curve():
    late = [0.1] * 60 + [0.2] * 140
    flat = [0.2] * 200
    assert bench.choose_cap({"a": [flat]}, (50, 100, 200)) == 50
    assert bench.choose_cap({"a": [flat], "b": [late]}, (50, 100, 200)) == 100
    assert bench.choose_cap({"b": [late[:100]]}, (50, 100, 200)) == 100  # the curves' length: nothing longer seen


def test_a_run_writes_the_report_and_resumes(shop_folder, tmp_path, capsys, monkeypatch):
    """`recllm bench learn-patience` end to end on a data folder; a rerun fits nothing (every curve is stored)."""
    import recllm.bench.learn.run as learn_bench
    from recllm.cli import main

    monkeypatch.setattr(learn_bench, "FULL_EPOCHS", 50)  # the benchmark's cap as the rows below were written for

    out = tmp_path / "report" / "learn-patience.md"
    argv = ["bench", "learn-patience", "--datasets", str(shop_folder), "--seeds", "0", "--models", "SASRec-CE",
            "HSTU", "--epochs", "50", "--threads", "1", "--out", str(out), "--allow-dirty", "--quiet"]
    assert main(argv) == 0
    text = out.read_text()
    assert "shop/interactions.csv" in text and "no test case is scored" in text
    assert "| SASRec-CE | 50 | 50 (never early) |" in text and "| HSTU | 50 | 3 |" in text
    assert capsys.readouterr().out.count("(fitted)") == 2
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(fitted)" not in printed and printed.count("(stored)") == 2


@pytest.mark.parametrize("extra,option", [(["--epochs", "20"], "--epochs"), (["--models", "SASRec"], "--models")])
def test_bad_arguments_get_one_line(extra, option, tmp_path, capsys):
    from recllm.cli import main

    assert main(["bench", "learn-patience", "--out", str(tmp_path / "r.md"), "--allow-dirty", *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and option in err, err


def test_the_report_module_is_presentation_only():
    from recllm.bench.runs import PRESENTATION_MODULES

    assert bench.__name__ in PRESENTATION_MODULES
