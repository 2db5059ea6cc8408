"""Reports: --out under the current folder by default, written only from a clean git tree unless --allow-dirty
(then the header says so), outside a checkout the header says that; all checked before any work."""

import subprocess

import pytest

from recllm.bench import reporting
from recllm.bench.reporting import report_target, source_state
from recllm.errors import UserInputError

from tests.bench.conftest import git as _git


def test_clean_tree_default_path_and_commit(checkout):
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=checkout, capture_output=True,
                         text=True).stdout.strip()
    target = report_target(None, "learn.md")
    assert target.path == checkout / "docs" / "results" / "learn.md"
    assert target.commit == f"commit {sha}"


def test_dirty_tree_needs_allow_dirty_and_the_header_says_so(checkout):
    (checkout / "a.txt").write_text("two\n")
    with pytest.raises(UserInputError, match="uncommitted change.*--allow-dirty"):
        report_target(None, "learn.md")
    assert source_state(allow_dirty=True).endswith("+dirty (written with --allow-dirty)")


def test_changed_generated_results_do_not_make_the_tree_dirty(checkout):
    results = checkout / "docs" / "results"
    results.mkdir(parents=True)
    (results / "learn.runs.jsonl").write_text("{}\n")
    _git("add", "docs", cwd=checkout)
    _git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "store", cwd=checkout)
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=checkout, capture_output=True,
                         text=True).stdout.strip()
    (results / "learn.runs.jsonl").write_text("{}\n{}\n")  # a resumed benchmark stored more runs
    assert source_state() == f"commit {sha}"
    (checkout / "docs" / "notes.md").write_text("x\n")  # untracked: ignored as before
    (checkout / "a.txt").write_text("two\n")  # code outside docs/results still counts
    with pytest.raises(UserInputError, match="1 uncommitted change"):
        source_state()


def test_the_code_checkout_is_the_one_tracking_the_package(tmp_path):
    """A package tracked by a checkout names it; one lying untracked inside a repository (a virtual environment in a
    user's project, git-ignored) names none, so the project's commit is never taken for recllm's."""
    from recllm.bench.reporting import code_checkout

    _git("init", "-q", cwd=tmp_path)
    tracked = tmp_path / "src" / "recllm"
    tracked.mkdir(parents=True)
    (tracked / "__init__.py").write_text("")
    (tmp_path / ".gitignore").write_text(".venv/\n")
    _git("add", "src", ".gitignore", cwd=tmp_path)
    installed = tmp_path / ".venv" / "site-packages" / "recllm"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert code_checkout(tracked) == tmp_path.resolve()
    assert code_checkout(installed) is None
    assert code_checkout(tmp_path.parent / "nowhere") is None


def test_the_current_folders_repository_is_not_the_source(tmp_path, monkeypatch):
    """A user runs a benchmark inside their own project's repository, with changes: the header still names the
    recllm code that ran (here this test's checkout), and the project's changes do not stop the report."""
    from recllm.bench.reporting import code_checkout

    if code_checkout() is None:
        pytest.skip("recllm is not imported from a git checkout here")
    expected = source_state(allow_dirty=True)
    _git("init", "-q", cwd=tmp_path)
    (tmp_path / "mine.txt").write_text("one\n")
    _git("add", "mine.txt", cwd=tmp_path)
    _git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "first", cwd=tmp_path)
    (tmp_path / "mine.txt").write_text("two\n")
    monkeypatch.chdir(tmp_path)
    assert source_state(allow_dirty=True) == expected


def test_outside_a_checkout_the_header_names_the_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reporting, "code_checkout", lambda package=None: None)
    assert source_state().startswith("not a git checkout (recllm ")


def test_cli_refuses_a_dirty_tree_and_a_bad_out_before_any_work(placeholder_data, checkout, monkeypatch, capsys):
    import recllm.bench.learn.run as learn_run
    from recllm.cli import main

    monkeypatch.setattr(learn_run, "run_benchmark", lambda **k: pytest.fail("work started"))
    assert main(["bench", "learn", "--quick", "--out", str(checkout / "report.txt")]) == 2
    assert "report.txt" in capsys.readouterr().err
    (checkout / "a.txt").write_text("two\n")
    assert main(["bench", "learn", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recllm bench learn: error: the git tree has 1 uncommitted change") and "--allow-dirty" in err
    assert not (checkout / "docs").exists()
    called = {}
    monkeypatch.setattr(learn_run, "run_benchmark", lambda **k: called.update(k) or 0)
    assert main(["bench", "learn", "--quick", "--allow-dirty"]) == 0
    target = called["out"]
    assert target.path == checkout / "docs" / "results" / "learn-quick.md" and "+dirty" in target.commit


def test_every_registered_benchmark_has_the_report_options():
    from recllm.cli import build_parser

    parser = build_parser()
    bench = next(a for a in parser._subparsers._group_actions[0].choices["bench"]._actions
                 if a.__class__.__name__ == "_SubParsersAction")
    assert {"impute", "learn", "trsr"} <= set(bench.choices)
    for name, sub in bench.choices.items():
        assert {"--out", "--allow-dirty", "--overwrite"} <= set(sub._option_string_actions), name


def test_the_header_command_names_only_what_differs_from_the_defaults(placeholder_data, checkout, monkeypatch):
    import recllm.bench.learn.run as learn_run
    from recllm.cli import build_parser

    args = build_parser().parse_args(["bench", "learn", "--quick", "--seeds", "0", "1", "--models", "LEARN (shared tower)",
                                      "--allow-dirty"])
    seen = {}
    monkeypatch.setattr(learn_run, "run_benchmark", lambda **k: seen.update(k) or 0)
    assert args.func(args) == 0
    assert args.command == "recllm bench learn --quick --seeds 0 1 --models 'LEARN (shared tower)' --allow-dirty"


def test_every_benchmark_method_change_names_a_commit_of_this_repository():
    import importlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True,
                      text=True).stdout.strip() != "false":
        pytest.skip("needs the full git history of the checkout")
    modules = ["recllm.bench.learn.report", "recllm.bench.impute.report", "recllm.bench.trsr.report"]
    for name in modules:
        changes = importlib.import_module(name).METHOD_CHANGES
        assert changes, name
        for commit, text in changes:
            found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], cwd=root,
                                   capture_output=True)
            assert found.returncode == 0, f"{name}: {commit} is not a commit here ({text[:40]}...)"
            assert text and not text.endswith("."), (name, commit)  # rendered as "- <text> (<commit>)"


def test_out_may_name_a_folder_for_the_default_report_name(checkout, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    assert report_target(str(results), "learn.md").path == results / "learn.md"
    assert report_target(f"{results}/", "trsr.md").path == results / "trsr.md"
    assert report_target(str(results / "mine.md"), "learn.md").path == results / "mine.md"
    new = tmp_path / "new"  # a trailing separator names a folder, made when the report is written
    assert report_target(f"{new}/", "learn.md").path == new / "learn.md" and not new.exists()


def test_out_under_the_home_folder_is_the_checked_path(checkout, tmp_path, monkeypatch):
    """--out '~/...' was checked with ~ expanded but written to a folder literally named ~ under the current one;
    an existing generated report under ~ was refused as the user's."""
    from recllm.eval.report import GENERATED_NOTE

    home = tmp_path / "home"
    (home / "results").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    assert report_target("~/r.md", "learn.md").path == home / "r.md"
    assert report_target("~/results", "learn.md").path == home / "results" / "learn.md"
    (home / "old.md").write_text(f"# old\n\n{GENERATED_NOTE}\n")
    assert report_target("~/old.md", "learn.md").path == home / "old.md"  # rerunning updates recllm's own report
    assert not (checkout / "~").exists()


def test_a_checkout_without_a_commit_is_one_line_or_said_in_the_header(tmp_path, monkeypatch):
    """`git init` and nothing committed: no commit to name, so refused like a dirty tree (not a git traceback)."""
    _git("init", "-q", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reporting, "code_checkout", lambda package=None: tmp_path)
    with pytest.raises(UserInputError, match="no commit yet.*--allow-dirty"):
        source_state()
    assert source_state(allow_dirty=True) == "no commit yet (written with --allow-dirty)"
