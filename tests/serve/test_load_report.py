"""The load report's markdown from a made-up result (no server): every section, the verdicts, the header."""

import copy

import pytest

pytest.importorskip("fastapi")

RESULT = {
    "learn": "runs/l", "trsr": "runs/t", "threads": 1, "candidates": 50, "start_s": 12.5, "wall_s": 300.0,
    "start_parts": {"learn": 0.4, "trsr": 3.2}, "context": "two cores shared with other jobs",
    "health": {"catalogue_items": 1682, "users": 943},
    "load": {"samples": 10, "min": 1.5, "median": 1000.0, "max": 1001.0},
    "latency": [{"rerank": "none", "clients": 4, "requests": 200, "users": 180, "p50_ms": 40.0, "p95_ms": 60.0,
                 "p99_ms": 70.0, "rps": 90.5},
                {"rerank": "llm", "clients": 16, "requests": 16, "users": 8, "p50_ms": 9000.0, "p95_ms": 15000.0,
                 "p99_ms": 16000.0, "rps": 0.9}],
    "summaries": {"users": 8, "median_s": 20.0, "max_s": 31.0, "summarised": 8},
    "new_item": {"items": 2, "post_ms": [100.0, 120.0], "recommendable_ms": [110.0, float("nan")], "ranks": [1]},
    "fault": {"acknowledged": 200, "events_per_s": 25.0, "acknowledged_present_once": 200, "missing": 0,
              "duplicates": 0, "never_sent_stored": 0, "in_flight_stored_before_retry": False,
              "in_flight_retry_code": 201, "replay_code": 200, "history_after_restart": 200,
              "stored_after_restart": 200, "history_after_retry": 201, "stored_after_retry": 201,
              "in_flight_stored_once_after_retry": True, "restart_s": 11.0, "restart_parts": {"learn": 0.5}},
    "bad_requests": [("missing token", 401, 401, True), ("oversized body", 413, 500, False)],
    "flops": {"none": {"flops": 2e6, "dtype": "float32", "search_counted": True, "threads": 1, "peak": 100e9},
              "llm": {"flops": 40e9, "dtype": "bfloat16", "threads": 1, "peak": 400e9}},
}


def test_report_has_every_section_and_flags_what_did_not_hold():
    from recllm.serve.load_report import report

    text = report(RESULT, "python -m recllm.serve.load --learn runs/l", "commit 0123abcd")
    assert "- source: commit 0123abcd" in text and "median 1000.0, min 1.5, max 1001.0" in text
    assert "More runnable processes than cores" in text
    assert "- context: two cores shared with other jobs" in text and "learn 0.4 s, trsr 3.2 s" in text
    # of peak: 0.9 requests/s x 40 GFLOP over the bfloat16 peak of 400 GFLOP/s; 90.5 x 2 MFLOP over 100 GFLOP/s
    assert "| llm | 16 | 16 | 8 | 9000.0 | 15000.0 | 16000.0 | 0.90 | 40 | 9.0% |" in text
    assert "| none | 4 | 200 | 180 | 40.0 | 60.0 | 70.0 | 90.50 | 0.002 | 0.2% |" in text
    assert "rerank=none: float32, 100.0 GFLOP/s; rerank=llm: bfloat16, 400.0 GFLOP/s" in text
    assert "took median 20.0 s, max 31.0 s" in text
    assert "median 110 ms, max 110 ms (1 not listed within 60 s)" in text
    assert "Result: every acknowledged event is stored exactly once" in text
    assert "25 acknowledged events/s, each a full synchronous commit: a rate of durable writes" in text
    assert "| oversized body | 413 | 500 (MISMATCH) | NO |" in text and "| missing token | 401 | 401 | yes |" in text
    broken = copy.deepcopy(RESULT)
    broken["fault"]["missing"] = 1
    broken["load"] = {"samples": 2, "min": 0.0, "median": 0.0, "max": 0.0}
    broken["trsr"], broken["summaries"], broken["new_item"] = None, None, None
    text = report(broken, "x", "commit 0123abcd")
    assert "did NOT hold" in text and "not oversubscribed" in text
    assert "no TRSR run" in text and "Not measured" in text and "summaries were made first" not in text
    del broken["flops"]  # a result from before FLOPs were counted: the columns say n/a
    assert "| 90.50 | n/a | n/a |" in report(broken, "x", "commit 0123abcd")
    broken["flops_error"] = "MemoryError: out of memory"
    assert "not counted (loading the runs in the test's process failed: MemoryError: out of memory)" in \
        report(broken, "x", "commit 0123abcd")


def test_the_header_says_what_other_processes_took_of_the_cpu():
    """Measured from /proc (the test's own clients and server left out), not read from the lagging load average."""
    from recllm.serve.load_report import report

    quiet = copy.deepcopy(RESULT)
    quiet["load"] = {"samples": 10, "min": 3.0, "median": 3.5, "max": 4.0, "others_median": 0.02,
                     "others_max": 0.1, "others_mean": 0.03}
    text = report(quiet, "x", "commit 0123abcd")
    assert "CPU used by other processes during the run: median 0.02, max 0.10 of" in text
    assert "had the CPU to themselves" in text and "competed" not in text  # a load of 3.5 was the test itself
    busy = copy.deepcopy(quiet)
    busy["load"].update(others_median=1.5, others_max=2.0)
    assert "Other jobs competed with the service" in report(busy, "x", "commit 0123abcd")


def test_a_rerun_says_what_changed_from_the_serve_report_it_replaces(tmp_path):
    """serve.md gets the closing section every generated report has: here the FLOP columns, n/a before."""
    from recllm.eval.report import CHANGES_HEADING, with_changes
    from recllm.serve.load_report import report

    old = copy.deepcopy(RESULT)
    del old["flops"]
    path = tmp_path / "serve.md"
    path.write_text(report(old, "x", "commit 0123abcd"))
    text = with_changes(path, report(RESULT, "x", "commit 4567ef01"))
    changes = text[text.index(CHANGES_HEADING):]
    assert "from commit 0123abcd" in changes
    assert "of peak: 2 of 2 rows (largest: none / 4, n/a -> 0.2%)" in changes
    path.write_text("my own notes\n")  # not a generated report: nothing to compare with
    assert CHANGES_HEADING not in with_changes(path, report(RESULT, "x", "commit 4567ef01"))


def test_rows_are_matched_by_rerank_and_clients_and_timings_are_not_in_row_names(tmp_path):
    """A rerun's changes name the row per client count, and the restart's loading time is a figure, not a name."""
    from recllm.eval.report import with_changes
    from recllm.serve.load_report import report

    path = tmp_path / "serve.md"
    path.write_text(report(RESULT, "x", "commit 0123abcd"))
    again = copy.deepcopy(RESULT)
    again["latency"][1]["p50_ms"] = 8000.0
    again["fault"]["restart_parts"] = {"learn": 0.7}
    text = report(again, "x", "commit 4567ef01")
    assert "| of it, loading (and replaying the store: restore) | 0.7 s (learn 0.7 s) |" in text
    changes = with_changes(path, text)
    assert "p50 ms: 1 of 2 rows (largest: llm / 16, 9000.0 -> 8000.0)" in changes
    assert "result: 1 of 13 rows (largest: of it, loading (and replaying the store: restore), 0.5 s (learn 0.5 s) " \
        "-> 0.7 s (learn 0.7 s))" in changes and "rows added" not in changes


def test_a_report_file_that_appeared_during_the_run_is_kept_and_the_report_printed(tmp_path, monkeypatch, capsys):
    from recllm.serve import load

    for name, needed in (("l", "user_ids.json"), ("t", "trsr_config.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / needed).write_text("[]")
    out = tmp_path / "serve.md"

    def run(*args, **kwargs):
        out.write_text("my notes\n")  # a user's file, made while the test ran
        return copy.deepcopy(RESULT)

    monkeypatch.setattr(load, "run", run)
    with pytest.raises(SystemExit) as exit_:
        load.main(["--learn", str(tmp_path / "l"), "--trsr", str(tmp_path / "t"), "--out", str(out),
                   "--allow-dirty"])
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and out.read_text() == "my notes\n"
    assert "# recllm serve: load and fault test" in captured.out and "| llm | 16 | 16 | 8 |" in captured.out
    assert "already exists" in captured.err and "the report is printed above" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
