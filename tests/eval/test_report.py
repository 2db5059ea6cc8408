"""Report header, tables, CI formatting and atomic plot writing."""

import hashlib
import math
import re

import pytest

from recllm.eval.report import (
    GENERATED_NOTE, data_checksums, fmt_ci, format_table, machine_info, save_plot, write_report,
)


def test_fmt_ci():
    assert fmt_ci(0.1234, 0.1178, 0.1290) == "0.1234 ± 0.0056"
    assert fmt_ci(0.5, 0.4, 0.55, digits=2) == "0.50 ± 0.10"  # the larger side of a skewed interval
    assert fmt_ci(0.4, math.nan, math.nan) == "0.4000 (no CI)"


def test_format_table():
    table = format_table([{"model": "pop|x", "hr": 0.12345, "n": 3}], ["model", "hr", "n"])
    assert table.splitlines() == ["| model | hr | n |", "| --- | --- | --- |", "| pop\\|x | 0.1235 | 3 |"]
    with pytest.raises(KeyError, match="row 0"):
        format_table([{"model": "a"}], ["model", "hr"])


def test_machine_info_has_no_paths():
    info = machine_info()
    assert set(info) >= {"cpu", "cores", "amx", "python", "torch", "transformers"}
    assert info["amx"] in ("yes", "no")


def test_write_report_header_and_checksums(tmp_path, monkeypatch):
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    (data / "a.csv").write_bytes(b"x,y\n1,2\n")
    (data / "b.csv").write_bytes(b"z\n")
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    out = write_report(tmp_path / "docs" / "r.md", "Toy results", "python bench.py --seed 0", [data], "| a |\n", seeds=[0, 1])
    text = out.read_text()
    assert text.startswith("# Toy results\n")
    assert GENERATED_NOTE in text
    assert "- command: `python bench.py --seed 0`" in text
    assert re.search(r"- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "- seeds: 0, 1" in text and "AMX:" in text and "torch" in text
    digest = hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert f"`toy/a.csv`: `{digest}`" in text
    assert "toy/b.csv" in text and str(tmp_path) not in text
    assert text.rstrip().endswith("| a |")
    assert not [p for p in (tmp_path / "docs").iterdir() if p.name != "r.md"]  # no temp files left


def test_missing_data_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        data_checksums([tmp_path / "nope.csv"])


def test_save_plot_atomic(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_plot(fig, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def _body(rows: dict[str, float]) -> str:
    lines = ["## ml-100k", "", f"### cold_start ({len(rows)} test users)", "", "| model | hr@10 | fit s |",
             "| --- | --- | --- |"]
    return "\n".join(lines + [f"| {name} | {hr:.4f} | 1.0 |" for name, hr in rows.items()]) + "\n"


def test_a_rewritten_report_says_which_figures_changed_and_keeps_that_on_a_re_render(tmp_path):
    from recllm.eval.report import CHANGES_HEADING

    path = tmp_path / "r.md"
    write_report(path, "Toy", "bench toy", [], _body({"LEARN": 0.2230, "SASRec": 0.0033}), commit="commit aaa111")
    assert CHANGES_HEADING not in path.read_text()  # nothing replaced: nothing to compare

    write_report(path, "Toy", "bench toy --splits cold_start", [], _body({"LEARN": 0.0043, "SASRec": 0.0033,
                                                                          "content-kNN": 0.0260}),
                 commit="commit bbb222", method_changes=[("abc1234", "The cold-start split is now in time.")])
    text = path.read_text()
    changes = text[text.index(CHANGES_HEADING):]
    assert "from commit aaa111 by `bench toy`" in changes  # the replaced version and its (different) command
    assert "- The cold-start split is now in time. (abc1234)" in changes  # no git here: every change is listed
    # the heading's count changed (2 -> 3 test users): the table still matches; one hr@10 of the two kept rows moved
    assert "- ml-100k / cold_start: table by model: hr@10: 1 of 3 rows (largest: LEARN, 0.2230 -> " \
           "0.0043); rows added: content-kNN" in changes
    assert "fit s" not in changes.split("hr@10: 1 of 3")[1]  # an unchanged column is not listed

    write_report(path, "Toy", "bench toy --splits cold_start", [], _body({"LEARN": 0.0043, "SASRec": 0.0033,
                                                                          "content-kNN": 0.0260}),
                 commit="commit ccc333")
    again = path.read_text()
    kept = again[again.index(CHANGES_HEADING):]  # same figures: the last rerun's account stays, said to be its
    assert kept.startswith(CHANGES_HEADING + "\n\nNo figure changed from the version made on ")
    assert "from commit bbb222. The account of the last rerun whose figures changed follows" in kept
    assert kept.endswith(changes[len(CHANGES_HEADING):].lstrip("\n")) and again.count(CHANGES_HEADING) == 1
    write_report(path, "Toy", "bench toy --splits cold_start", [], _body({"LEARN": 0.0043, "SASRec": 0.0033,
                                                                          "content-kNN": 0.0260}),
                 commit="commit ddd444")
    third = path.read_text()
    third = third[third.index(CHANGES_HEADING):]  # one preamble, naming the version just replaced
    assert third.count("No figure changed") == 1 and "from commit ccc333." in third and "bbb222." not in third
    assert third.endswith(changes[len(CHANGES_HEADING):].lstrip("\n"))


def test_re_renders_of_a_report_whose_figures_never_changed_say_so_and_promise_nothing(tmp_path):
    from recllm.eval.report import CHANGES_HEADING

    path = tmp_path / "r.md"
    for commit in ("aaa111", "bbb222", "ccc333"):
        write_report(path, "Toy", "bench toy", [], _body({"LEARN": 0.2230}), commit=f"commit {commit}")
    changes = path.read_text().split(CHANGES_HEADING)[1]
    assert "from commit bbb222." in changes and "No figure in its tables changed." in changes
    assert "No figure changed from the version" not in changes and "last rerun" not in changes
    text = path.read_text()  # a hand-trimmed changes section: nothing to keep, a fresh account
    path.write_text(text[:text.index(CHANGES_HEADING) + len(CHANGES_HEADING)] + "\n")
    write_report(path, "Toy", "bench toy", [], _body({"LEARN": 0.2230}), commit="commit ddd444")
    changes = path.read_text().split(CHANGES_HEADING)[1]
    assert "from commit ccc333." in changes and "No figure in its tables changed." in changes


def test_a_report_replacing_a_hand_written_file_or_losing_a_table_says_so(tmp_path):
    from recllm.eval.report import CHANGES_HEADING, report_changes

    path = tmp_path / "notes.md"
    path.write_text("| model | hr@10 |\n| --- | --- |\n| a | 0.1 |\n")
    write_report(path, "Toy", "bench toy", [], _body({"LEARN": 0.1}), commit="commit aaa111", overwrite=True)
    assert CHANGES_HEADING not in path.read_text()  # not a generated report: no previous version to compare

    previous = path.read_text()
    current = previous.replace("### cold_start", "### temporal")
    changes = report_changes(previous, current)
    assert "- new table: ml-100k / temporal: table by model" in changes
    assert "- table no longer in the report: ml-100k / cold_start: table by model" in changes
    assert "No figure in its tables changed." not in changes
    assert "No figure in its tables changed." in report_changes(previous, previous)


def test_a_row_per_cpu_is_matched_by_its_cpu_not_by_its_order():
    """trsr-agreement.md keeps a row per CPU that measured a ranker: a new CPU's row is a row added, and the other
    CPU's unchanged row is not reported as changed (its figures after the numbers would otherwise not name it)."""
    from recllm.eval.report import report_changes

    head = "# T\n\n| data set | ranker | lr | Spearman | CPU |\n| --- | --- | --- | --- | --- |\n"
    previous = head + "| books | zero-shot |  | 0.913 | AMD EPYC |\n"
    current = head + "| books | zero-shot |  | 0.912 | Intel Xeon |\n| books | zero-shot |  | 0.913 | AMD EPYC |\n"
    changes = report_changes(previous, current)
    # an empty cell (no lr) takes no place in the name
    assert "rows added: books / zero-shot / Intel Xeon" in changes and "Spearman" not in changes


def test_only_the_method_changes_the_previous_version_lacked_are_listed(tmp_path):
    import subprocess

    from recllm.eval.report import report_changes

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    commits = []
    (tmp_path / "src" / "recllm").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    for name in ("split", "src/recllm/baseline.py"):
        (tmp_path / name).write_text(name)
        git("add", name)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", name)
        commits.append(git("rev-parse", "--short", "HEAD"))
    previous = write_report(tmp_path / "r.md", "Toy", "bench toy", [], _body({"LEARN": 0.2}),
                            commit=f"commit {commits[0]}").read_text()
    changes = report_changes(previous, previous.replace(commits[0], commits[1]),
                             [(commits[0], "time split"), (commits[1], "content-kNN row")], where=tmp_path / "docs")
    assert "- content-kNN row" in changes and "time split" not in changes
    assert f"1 commit changed the library since then (`git log {commits[0]}..{commits[1]} -- src/recllm`)" in changes


def test_a_table_that_gained_a_column_is_still_compared_and_says_so():
    from recllm.eval.report import report_changes

    old = "# T\n\n## a\n\n| model | hr@10 |\n| --- | --- |\n| x | 0.1 |\n"
    new = "# T\n\n## a\n\n| model | seeds | hr@10 |\n| --- | --- | --- |\n| x | 3 | 0.2 |\n"
    assert "- a: table by model: hr@10: 1 of 1 rows (largest: x, 0.1 -> 0.2); columns added: seeds, removed: none" \
        in report_changes(old, new)


def test_a_report_names_paths_under_the_working_folder_relatively(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    body = f"Not run: {tmp_path.resolve() / 'runs' / 'manifest.json'} not found\n"
    text = write_report(tmp_path / "r.md", "Toy", "bench toy", [], body, commit="commit aaa111").read_text()
    assert "Not run: runs/manifest.json not found" in text and str(tmp_path.resolve()) not in text


def test_a_replaced_version_made_from_a_dirty_tree_is_named_in_words():
    from recllm.eval.report import report_changes

    old = "# T\n\n- command: `x`\n- git commit: abc123+dirty\n\n| model | hr |\n| --- | --- |\n| a | 0.1 |\n"
    changes = report_changes(old, old.replace("abc123+dirty", "def456").replace("0.1", "0.2"))
    assert "from commit abc123 with uncommitted changes" in changes and "+dirty" not in changes


def test_git_commit_is_dirty_for_source_changes_not_for_generated_results(tmp_path):
    """One rule with `recllm bench`'s source line: a report rewritten under docs/results leaves the tree clean (the
    RecBole reference named its clean commit +dirty because the benchmarks before it had written their reports)."""
    import subprocess

    from recllm.eval.report import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "r.md").write_text("old")
    (tmp_path / "a.py").write_text("x = 1")
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "0")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "1")
    (tmp_path / "docs" / "results" / "r.md").write_text("new")
    assert not git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "a.py").write_text("x = 2")
    assert git_commit(tmp_path).endswith("+dirty")


def test_fmt_of_peak_is_a_percentage_or_empty():
    from recllm.eval.report import fmt_of_peak

    assert fmt_of_peak(40.0, 0.5, 100.0) == "20.0%" and fmt_of_peak(2.0, 3e9, 48e9) == "12.5%"
    assert fmt_of_peak(1.0, None, 100.0) == "" and fmt_of_peak(float("nan"), 1.0, 1.0) == ""
    assert fmt_of_peak(1.0, 1.0, 0.0) == ""


def test_a_file_recllm_did_not_make_is_not_replaced_at_write_time_without_overwrite(tmp_path):
    """The checks before a benchmark's work are repeated when its report and plots are written: a user's file that
    appeared at the report's or a plot's path meanwhile stays as it was, unless --overwrite was given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recllm.errors import UserInputError

    report, plot = tmp_path / "r.md", tmp_path / "p.png"
    report.write_text("my notes\n")
    plot.write_bytes(b"my picture")
    with pytest.raises(UserInputError, match="already exists"):
        write_report(report, "Toy", "bench toy", [], "| a |\n")
    fig = plt.figure()
    with pytest.raises(UserInputError, match="did not generate"):
        save_plot(fig, plot)
    assert not plt.fignum_exists(fig.number)  # closed all the same
    assert report.read_text() == "my notes\n" and plot.read_bytes() == b"my picture"
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["p.png", "r.md"]  # no temporary file left
    write_report(report, "Toy", "bench toy", [], "| a |\n", overwrite=True)  # --overwrite: replaced
    save_plot(plt.figure(), plot, overwrite=True)
    write_report(report, "Toy", "bench toy", [], "| b |\n")  # now recllm's own: a rerun replaces them
    save_plot(plt.figure(), plot)
    assert "| b |" in report.read_text() and plot.read_bytes()[:4] == b"\x89PNG"


def test_a_report_target_carries_the_users_overwrite_to_write_time(tmp_path):
    from recllm.bench.reporting import report_target

    assert report_target(tmp_path / "r.md", "r.md", allow_dirty=True).overwrite is False
    assert report_target(tmp_path / "r.md", "r.md", overwrite=True, allow_dirty=True).overwrite is True
