"""DiskCache: round trips, key stability and sensitivity, persistence, interruption, two processes."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from recllm.llm.cache import DiskCache

BASE_PARTS = {
    "model": "llama-abc123",
    "template": "v1",
    "params": {"max_new_tokens": 8, "temperature": 0.0},
    "input": "Is this item good?",
}


@pytest.fixture()
def path(tmp_path):
    return tmp_path / "cache.sqlite"


def test_array_round_trip_keeps_dtype_shape_and_values(path):
    cache = DiskCache(path)
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "f16": np.linspace(-1, 1, 5).astype(np.float16),
        "i64": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        "bool": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    cache.put_many(arrays)
    got = cache.get_many(list(arrays))
    assert set(got) == set(arrays)
    for name, arr in arrays.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        np.testing.assert_array_equal(got[name], arr)


def test_numpy_scalar_round_trip(path):
    cache = DiskCache(path)
    cache.put("s", np.float32(1.25))
    value = cache.get("s")
    assert isinstance(value, np.float32) and value == np.float32(1.25)


def test_json_round_trip(path):
    cache = DiskCache(path)
    values = {"text": "Yes — très bien", "num": 3.5, "list": [1, "a", None, [2.0]], "obj": {"b": [1], "a": True}}
    cache.put_many(values)
    assert cache.get_many(list(values)) == values


def test_unstorable_value_raises_type_error(path):
    cache = DiskCache(path)
    with pytest.raises(TypeError, match="JSON-able"):
        cache.put("k", object())
    with pytest.raises(TypeError, match="object-dtype"):
        cache.put("k", np.array([object()], dtype=object))
    assert len(cache) == 0


def test_get_missing_and_defaults(path):
    cache = DiskCache(path)
    cache.put("a", 1)
    assert cache.get_many(["a", "b", "c"]) == {"a": 1}
    assert cache.get("b") is None
    assert cache.get("b", "fallback") == "fallback"
    assert "a" in cache and "b" not in cache


def test_key_is_stable_and_order_independent():
    key = DiskCache.key(**BASE_PARTS)
    assert key == DiskCache.key(**dict(reversed(list(BASE_PARTS.items()))))
    reordered = dict(BASE_PARTS, params={"temperature": 0.0, "max_new_tokens": 8})
    assert key == DiskCache.key(**reordered)
    assert len(key) == 64 and int(key, 16) >= 0
    # a fixed literal guards against accidental changes of the canonical form (which would orphan every cache)
    assert DiskCache.key(a=1, b="x") == hashlib.sha256(b'{"a":1,"b":"x"}').hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"model": "llama-abc124"},
        {"template": "v2"},
        {"params": {"max_new_tokens": 9, "temperature": 0.0}},
        {"params": {"max_new_tokens": 8, "temperature": 0.0, "top_k": 1}},
        {"input": "Is this item good? "},
        {"extra": 0},
    ],
)
def test_key_changes_when_any_part_changes(change):
    assert DiskCache.key(**BASE_PARTS) != DiskCache.key(**{**BASE_PARTS, **change})


def test_key_handles_numpy_and_dataclasses():
    @dataclasses.dataclass
    class Params:
        k: int
        ids: tuple[int, ...]

    a = np.arange(4, dtype=np.int64)
    k1 = DiskCache.key(input=a, params=Params(3, (1, 2)), n=np.int64(5))
    assert k1 == DiskCache.key(input=a.copy(), params=Params(3, (1, 2)), n=5)
    assert k1 != DiskCache.key(input=a.astype(np.int32), params=Params(3, (1, 2)), n=5)
    assert k1 != DiskCache.key(input=a.reshape(2, 2), params=Params(3, (1, 2)), n=5)
    assert k1 != DiskCache.key(input=a, params=Params(3, (1, 3)), n=5)
    with pytest.raises(TypeError, match="cache key"):
        DiskCache.key(input=object())
    with pytest.raises(ValueError):
        DiskCache.key()


def test_persistence_across_instances_and_namespaces(path):
    with DiskCache(path, namespace="gen") as cache:
        cache.put_many({"k1": "one", "k2": np.ones(3)})
    again = DiskCache(path, namespace="gen")
    got = again.get_many(["k1", "k2"])
    assert got["k1"] == "one"
    np.testing.assert_array_equal(got["k2"], np.ones(3))
    other = DiskCache(path, namespace="emb")
    assert len(other) == 0 and other.get_many(["k1"]) == {}
    other.put("k1", 5)
    assert again.get("k1") == "one" and other.get("k1") == 5
    assert len(again) == 2
    again.clear()
    assert len(again) == 0 and other.get("k1") == 5


def test_overwrite_replaces_value(path):
    cache = DiskCache(path)
    cache.put("k", [1])
    cache.put("k", np.zeros(2))
    assert isinstance(cache.get("k"), np.ndarray) and len(cache) == 1


def test_interrupted_job_keeps_finished_batches(path):
    keys = [DiskCache.key(model="m", input=f"prompt {i}") for i in range(10)]
    cache = DiskCache(path)
    cache.put_many({k: i for i, k in enumerate(keys[:5])})  # first batch finished

    class Boom(Exception):
        pass

    class Exploding:
        """A mapping whose iteration dies half way, like a job killed while building its batch."""

        def items(self):
            yield keys[5], 5
            raise Boom

    with pytest.raises(Boom):
        cache.put_many(Exploding())  # type: ignore[arg-type]
    del cache  # the "process" goes away

    resumed = DiskCache(path)
    got = resumed.get_many(keys)
    assert got == {k: i for i, k in enumerate(keys[:5])}  # the finished batch survived, nothing half-written
    missing = [k for k in keys if k not in got]
    assert missing == keys[5:]
    resumed.put_many({k: keys.index(k) for k in missing})
    assert len(resumed) == 10


def test_pickles_by_path(path):
    cache = DiskCache(path, namespace="ns")
    cache.put("a", 1)
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.namespace == "ns" and clone.get("a") == 1


def test_bad_arguments(path):
    with pytest.raises(ValueError, match="namespace"):
        DiskCache(path, namespace="")
    with pytest.raises(ValueError, match="timeout"):
        DiskCache(path, timeout=0)
    with pytest.raises(TypeError, match="keys are strings"):
        DiskCache(path).put_many({1: "x"})  # type: ignore[dict-item]


def test_default_path_is_under_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "rc"))
    cache = DiskCache()
    assert cache.path.parent == tmp_path / "rc"
    cache.put("a", 1)
    assert cache.path.exists()


def test_two_processes_write_concurrently(path):
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from recllm.llm.cache import DiskCache
        cache = DiskCache(sys.argv[1], timeout=30)
        tag = sys.argv[2]
        for i in range(40):
            cache.put_many({f"{tag}-{i}-{j}": np.full(4, i) for j in range(5)})
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), tag]) for tag in ("a", "b")]
    # read while they write: readers must never see a partial batch or a locking error
    reader = DiskCache(path)
    seen = set()
    while any(p.poll() is None for p in procs):
        n = len(reader)
        assert n % 5 == 0
        seen.add(n)
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert len(reader) == 2 * 40 * 5
    assert len(seen) > 1  # the reader really ran while the writers wrote
    got = reader.get_many([f"b-39-{j}" for j in range(5)])
    assert all(np.array_equal(v, np.full(4, 39)) for v in got.values()) and len(got) == 5


def _open_after(barrier, path, results) -> None:
    barrier.wait()
    try:
        DiskCache(path, namespace="race").put("k", 1)
        results.put("ok")
    except Exception as err:  # noqa: BLE001 - the parent reports what went wrong
        results.put(repr(err))


def test_processes_opening_a_new_cache_at_once_all_succeed(tmp_path):
    # the ranks of a distributed job open one fresh cache together: switching it to WAL answered
    # "database is locked" at once (sqlite calls no busy handler there) in about a third of such starts
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(12):
        path = tmp_path / f"cache-{trial}.sqlite"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_open_after, args=(barrier, path, results)) for _ in range(6)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert outcomes == ["ok"] * 6, f"start {trial}: {outcomes}"


def test_a_cache_locked_longer_than_the_timeout_says_so(tmp_path):
    import sqlite3

    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OSError, match=r"another process held it locked for over 0\.3 s; wait"):
            DiskCache(path, timeout=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_the_command_line_reports_a_locked_cache_as_one_line_to_act_on(tmp_path, monkeypatch, capsys):
    import sqlite3

    import recllm.cli as cli

    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")

    def open_cache(args) -> int:
        DiskCache(path, timeout=0.2)
        return 0

    monkeypatch.setattr(cli, "_cache_list", open_cache)
    try:
        assert cli.main(["cache", "list"]) == 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another process held it locked" in err[0] and "internal error" not in err[0]
