"""The one run store: rows persist beside a report, and a stored run is reused only while the code that produced
it, the data and the settings are unchanged."""

import importlib
import sys

import pytest

from recllm.bench import runs
from recllm.bench.runs import RunStore, code_identity, data_sha256, run_key
from recllm.errors import UserInputError


def test_put_persists_and_reloads(tmp_path):
    path = tmp_path / "report.runs.jsonl"
    store = RunStore(path)
    assert len(store) == 0 and store.get("a") is None and not path.exists()
    store.put("a", {"x": 1.5, "tasks": {"auc": 0.7}})
    store.put("b", [1, 2], arrays={"per_user": [0.0, 1.0]})
    store.put("a", {"x": 2.0})  # replaced, not duplicated
    again = RunStore(path)
    assert len(again) == 2 and "b" in again and again.get("a") == {"x": 2.0} and again.get("b") == [1, 2]
    assert again.get_arrays("b")["per_user"].tolist() == [0.0, 1.0] and again.get_arrays("a") == {}
    assert not list(tmp_path.glob(".*.tmp"))
    again.get("a")["x"] = object()  # a caller changing its copy does not change the store
    again.put("c", 1)
    assert RunStore(path).get("a") == {"x": 2.0}


def test_a_corrupt_line_is_named(tmp_path):
    path = tmp_path / "r.runs.jsonl"
    path.write_text('{"code": "c", "modules": {}}\n{not json\n')
    with pytest.raises(UserInputError, match=r"line 2 .*r\.runs\.jsonl.*delete the file"):
        RunStore(path)


@pytest.mark.parametrize("content,words", [
    (b"\xff\xfe\x00 binary", "not UTF-8"),
    (b'{"code": "c", "modules": "ab"}\n', "line 1"),  # dict("ab") is a ValueError, not a JSON error
    (b"[1, 2]\n", "line 1"),
    (b'{"a": 1}\n', "line 1"),  # a JSON object of someone else's: named, not dropped as a stale run
])
def test_a_file_that_is_not_a_run_store_is_one_error_naming_it(tmp_path, content, words):
    path = tmp_path / "notes.runs.jsonl"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match=rf"{words}.*notes\.runs\.jsonl.*delete the file"):
        RunStore(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("arrays", [b"PK not a zip archive", None])
def test_arrays_that_are_not_a_run_stores_are_one_error_naming_them(tmp_path, arrays):
    import numpy as np

    path = tmp_path / "r.runs.jsonl"
    if arrays is None:  # a NumPy archive of someone else's: its arrays are not named key|field
        np.savez(tmp_path / "r.runs.npz", weights=np.ones(3))
    else:
        (tmp_path / "r.runs.npz").write_bytes(arrays)
    before = (tmp_path / "r.runs.npz").read_bytes()
    with pytest.raises(UserInputError, match=r"r\.runs\.npz"):
        RunStore(path)
    assert (tmp_path / "r.runs.npz").read_bytes() == before


def test_a_run_store_path_that_is_a_folder_is_refused_before_any_run(tmp_path):
    (tmp_path / "r.runs.jsonl").mkdir()
    with pytest.raises(UserInputError, match=r"folder.*r\.runs\.jsonl"):
        RunStore(tmp_path / "r.runs.jsonl")


def test_runs_stored_before_code_identities_are_stale_not_errors(tmp_path):
    path = tmp_path / "old.runs.jsonl"
    path.write_text('{"key": "a", "row": 1}\n{"dataset": "x", "key": "b", "metrics": {}}\n')
    store = RunStore(path)
    assert store.get("a") is None and "b" not in store and store.stale == 2
    store.put("c", 3)
    assert RunStore(path).keys() == ["c"]


def test_two_processes_sharing_a_store_keep_each_others_rows(tmp_path):
    """Benchmark shards side by side: each put merges what the other stored meanwhile."""
    path = tmp_path / "r.runs.jsonl"
    first, second = RunStore(path), RunStore(path)
    first.put("a", 1)
    second.put("b", 2)  # second was opened before "a" existed
    first.put("c", 3)
    assert {k: RunStore(path).get(k) for k in "abc"} == {"a": 1, "b": 2, "c": 3}


@pytest.fixture
def estimator(tmp_path, monkeypatch):
    """A tiny importable package ``fake_estimator`` in tmp_path (its source is what a run's code identity hashes)."""
    root = tmp_path / "src"
    package = root / "fake_estimator"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("LEARNING_RATE = 1e-3\n")
    (package / "report.py").write_text("TITLE = 'x'\n")
    monkeypatch.syspath_prepend(str(root))
    for name in ("fake_estimator", "fake_estimator.model", "fake_estimator.report"):
        sys.modules.pop(name, None)
        importlib.import_module(name)
    yield package
    for name in ("fake_estimator", "fake_estimator.model", "fake_estimator.report"):
        sys.modules.pop(name, None)


def test_a_run_is_reused_only_while_its_code_is_unchanged(estimator, tmp_path):
    path = tmp_path / "bench.runs.jsonl"
    data = tmp_path / "ratings.csv"
    data.write_text("u,i\n1,2\n")
    key = run_key(data=data_sha256([data]), settings={"lr": 1e-3}, seed=0)
    RunStore(path, packages=("fake_estimator",)).put(key, {"ndcg@10": 0.25})

    unchanged = RunStore(path, packages=("fake_estimator",))
    assert unchanged.get(key) == {"ndcg@10": 0.25} and unchanged.stale == 0  # same code, data, settings: reused

    # different settings or different data bytes: another key, never the stored run
    assert RunStore(path).get(run_key(data=data_sha256([data]), settings={"lr": 3e-3}, seed=0)) is None
    data.write_text("u,i\n1,3\n")
    assert RunStore(path).get(run_key(data=data_sha256([data]), settings={"lr": 1e-3}, seed=0)) is None

    # one changed line of the estimator's source: the run is stale, not reused, and dropped at the next write
    (estimator / "model.py").write_text("LEARNING_RATE = 1e-3\nEPOCHS = 2\n")
    with pytest.warns(RuntimeWarning, match="changed on disk after this process loaded it"):
        changed = RunStore(path, packages=("fake_estimator",))  # this process still runs the code it loaded
    assert changed.get(key) is None and key not in changed and changed.stale == 1 and len(changed) == 0
    changed.put("other", 1)
    assert key not in RunStore(path)._runs


def test_a_module_edited_while_a_benchmark_runs_does_not_vouch_for_its_runs(estimator, tmp_path):
    """The process keeps running the code it loaded: a run stored after the file changed must not carry the new
    file's hash (it would be reused by the changed code), so it is not kept, with a warning naming the module."""
    path = tmp_path / "bench.runs.jsonl"
    store = RunStore(path, packages=("fake_estimator",))  # opening the store records the loaded modules
    store.put("before", 1)
    (estimator / "model.py").write_text("LEARNING_RATE = 3e-3\n")  # edited mid-run; the module is not re-imported
    with pytest.warns(RuntimeWarning, match=r"model\.py: fake_estimator\.model changed on disk"):
        store.put("after", 2)
    reopened = RunStore(path, packages=("fake_estimator",))
    assert "after" not in reopened and "before" not in reopened  # both came from code that is gone
    sys.modules.pop("fake_estimator.model")  # a process that loads the new code stores valid runs
    importlib.import_module("fake_estimator.model")
    reopened.put("new", 3)
    assert RunStore(path).get("new") == 3


def test_a_run_whose_module_is_gone_is_not_reused(estimator, tmp_path):
    path = tmp_path / "bench.runs.jsonl"
    RunStore(path, packages=("fake_estimator",)).put("k", 1)
    (estimator / "model.py").unlink()
    sys.modules.pop("fake_estimator.model", None)
    assert RunStore(path).get("k") is None


def test_presentation_modules_are_not_part_of_the_code_identity(estimator, monkeypatch):
    import recllm.eval.report  # noqa: F401 - report rendering, imported but not recorded

    recorded = code_identity()
    assert "recllm.bench.runs" in recorded and "recllm.eval.report" not in recorded
    monkeypatch.setattr(runs, "PRESENTATION_MODULES", frozenset({"fake_estimator.report"}))
    assert set(code_identity(("fake_estimator",))) == {"fake_estimator", "fake_estimator.model"}


def test_data_files_are_the_files_each_loader_reads(tmp_path, monkeypatch):
    from recllm.data import data_files

    monkeypatch.setenv("RECLLM_DATA", str(tmp_path))
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item", "u1.base", "README"):
        (folder / name).write_text("x")
    assert [p.name for p in data_files(["ml-100k", "advertising", "built-in-code"])] == ["u.data", "u.item"]
    before = data_sha256(data_files(["ml-100k"]))
    (folder / "u.item").write_text("y")
    assert data_sha256(data_files(["ml-100k"])) != before


def test_a_benchmark_command_imports_no_other_benchmark_and_no_system_command():
    import subprocess

    code = ("import sys, recllm.cli as c; c.build_parser(['--seed', '1', 'bench', 'learn', '--help']); "
            "from recllm.bench.runs import code_identity; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('recllm.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "recllm.bench.learn" in loaded
    others = [m for m in loaded if m.startswith(("recllm.bench.trsr", "recllm.bench.impute", "recllm.bench.foundation"))
              or m.endswith(".cli") and m != "recllm.cli"]
    assert others == []


def test_command_line_modules_are_not_part_of_the_code_identity():
    import recllm.bench.impute  # noqa: F401 - each benchmark package parses its options and calls its run module
    import recllm.bench.learn  # noqa: F401
    import recllm.bench.learn.run  # noqa: F401 - a run module is part of it
    import recllm.bench.trsr  # noqa: F401
    import recllm.cli  # noqa: F401 - reads the command line only

    recorded = code_identity()
    assert not set(recorded) & {"recllm.cli", "recllm.cli_args", "recllm.bench", "recllm.bench.impute",
                                "recllm.bench.learn", "recllm.bench.trsr"}
    assert "recllm.bench.learn.run" in recorded


def test_a_valid_row_without_a_field_its_reader_needs_is_refused_in_one_line(tmp_path):
    """A store edited by hand can hold valid JSON without a field the benchmark reads: refused where it is read,
    naming the store, the key and the field, not a KeyError or TypeError later in a report."""
    import json

    from recllm.bench.learn.run import RunResult, stored_run
    from recllm.bench.runs import required_fields

    assert required_fields(RunResult) == ("dataset", "split", "seed", "model", "metrics", "per_user")
    path = tmp_path / "learn.runs.jsonl"
    RunStore(path).put("k1", {"dataset": "d", "split": "loo", "seed": 0, "model": "m", "metrics": {}})
    assert stored_run(RunStore(path), "k1") == RunResult("d", "loo", 0, "m", {}, {})
    lines = path.read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    del edited[-1]["row"]["model"]
    path.write_text("\n".join(json.dumps(record) for record in edited) + "\n")
    store = RunStore(path)
    assert store.get("k1")["dataset"] == "d"  # a reader that needs no field still gets it
    with pytest.raises(UserInputError, match=r"key k1\.\.\. has no model.*learn\.runs\.jsonl.*delete the file"):
        stored_run(store, "k1")
    with pytest.raises(UserInputError, match="has no a, b"):
        store.get("k1", ["a", "split", "b"])


# the estimator each committed store's runs must be keyed on (a report whose runs did not record it would be
# reused after its estimator changed)
ESTIMATORS = {"learn": "recllm.learn.train", "imputation": "recllm.impute.llm", "trsr": "recllm.trsr.ranker"}


@pytest.mark.parametrize("report, estimator", sorted(ESTIMATORS.items()))
def test_the_committed_stores_record_their_estimators_code(report, estimator):
    import json
    from pathlib import Path

    store = Path(__file__).resolve().parents[2] / "docs" / "results" / f"{report}.runs.jsonl"
    recorded = [json.loads(line)["modules"] for line in store.read_text(encoding="utf-8").splitlines()
                if '"modules"' in line]
    assert recorded and all(estimator in modules and "recllm.models.sasrec" in modules and "recllm.data.split" in
                            modules for modules in recorded)


def test_no_estimator_or_data_module_is_left_out_of_a_runs_identity():
    """Only report rendering and command-line dispatch may be left out of a run's code identity."""
    # an explicit list: adding a module here must be a decision (a benchmark's run module is not presentation)
    assert runs.PRESENTATION_MODULES == {
        "recllm.eval.report", "recllm.bench.reporting", "recllm.bench.impute.report", "recllm.bench.learn.report",
        "recllm.bench.learn.patience_report", "recllm.bench.trsr.report"}
    assert runs.DISPATCH_MODULES == {"recllm.__main__", "recllm.cli", "recllm.cli_args", "recllm.bench",
                                     "recllm.bench.__main__", "recllm.bench.impute", "recllm.bench.learn",
                                     "recllm.bench.trsr"}
