"""RunStore: finished runs persist as JSON lines beside a report, atomically, and bad files are named."""

import pytest

from recllm.eval.run_store import RunStore


def test_put_persists_and_reloads(tmp_path):
    path = tmp_path / "report.runs.jsonl"
    store = RunStore(path)
    assert len(store) == 0 and store.get("a") is None and not path.exists()
    store.put("a", {"x": 1.5, "tasks": {"auc": 0.7}})
    store.put("b", [1, 2])
    store.put("a", {"x": 2.0})  # replaced, not duplicated
    again = RunStore(path)
    assert len(again) == 2 and "b" in again and again.get("a") == {"x": 2.0} and again.get("b") == [1, 2]
    assert not list(tmp_path.glob(".*.tmp"))
    again.get("a")["x"] = object()  # a caller changing its copy does not change the store
    again.put("c", 1)
    assert RunStore(path).get("a") == {"x": 2.0}


def test_a_corrupt_line_is_named(tmp_path):
    path = tmp_path / "r.runs.jsonl"
    path.write_text('{"key": "a", "row": 1}\n{"row": 2}\n')
    with pytest.raises(ValueError, match=r"r\.runs\.jsonl, line 2"):
        RunStore(path)


def test_two_processes_sharing_a_store_keep_each_others_rows(tmp_path):
    """Benchmark shards side by side: each put merges what the other stored meanwhile."""
    path = tmp_path / "r.runs.jsonl"
    first, second = RunStore(path), RunStore(path)
    first.put("a", 1)
    second.put("b", 2)  # second was opened before "a" existed
    first.put("c", 3)
    assert {k: RunStore(path).get(k) for k in "abc"} == {"a": 1, "b": 2, "c": 3}
