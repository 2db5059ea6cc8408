"""``recllm bench <name> --plan`` writes nothing, so it skips the report checks: it runs in a dirty git tree and
with an --out a report could not take, and gets the plan's report path (the run store beside it)."""

import subprocess

import pytest

from recllm.cli import build_parser


@pytest.fixture
def dirty_checkout(checkout):
    """A git checkout with an uncommitted change to a tracked file, as the current folder."""
    (checkout / "a.txt").write_text("two\n")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=checkout, capture_output=True,
                          text=True).stdout.strip()
    return checkout


# command, the module whose plan_benchmark runs, the report's default name
PLANS = [
    ("learn", "recllm.bench.learn.plan", "learn.md"),
    ("trsr", "recllm.bench.trsr.plan", "trsr.md"),
    ("impute", "recllm.bench.impute.plan", "imputation.md"),
]


def _planned(monkeypatch, module):
    """Replace the plan's model work (probes, model loading): record where it would read the run store."""
    import importlib

    calls = []

    def plan(*args, **kwargs):
        out = kwargs.get("out", args[0] if args and module.endswith("learn.plan") else None)
        calls.append(out)
        return 0

    monkeypatch.setattr(importlib.import_module(module), "plan_benchmark", plan)
    return calls


@pytest.mark.parametrize("name,module,report", PLANS)
def test_plan_runs_in_a_dirty_tree(placeholder_data, dirty_checkout, monkeypatch, capsys, name, module, report):
    calls = _planned(monkeypatch, module)
    args = build_parser().parse_args(["bench", name, "--plan", "--quick"])
    assert args.func(args) == 0, capsys.readouterr().err
    assert calls == [dirty_checkout / "docs" / "results" / report.replace(".md", "-quick.md")]
    assert not (dirty_checkout / "docs").exists()  # a plan writes nothing


@pytest.mark.parametrize("name,module,report", PLANS)
def test_plan_takes_out_as_the_run_store_place(placeholder_data, dirty_checkout, monkeypatch, name, module, report):
    calls = _planned(monkeypatch, module)
    existing = dirty_checkout / "a.txt.md"
    existing.write_text("not a report\n")  # a report run would need --overwrite for it
    args = build_parser().parse_args(["bench", name, "--plan", "--out", str(existing)])
    assert args.func(args) == 0
    assert calls == [existing] and existing.read_text() == "not a report\n"


@pytest.mark.parametrize("name,module,report", PLANS)
def test_without_plan_the_dirty_tree_still_stops_the_run(dirty_checkout, monkeypatch, capsys, name, module,
                                                         report):
    from recllm.cli import main

    _planned(monkeypatch, module)
    assert main(["bench", name, "--quick"]) == 2
    assert "uncommitted change" in capsys.readouterr().err
