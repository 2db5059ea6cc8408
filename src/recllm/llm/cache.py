"""A content-addressed on-disk cache for expensive model outputs (generations, embeddings, scores).

Entries live in one sqlite file (stdlib ``sqlite3``, WAL journal) keyed by ``(namespace, key)``, where a key is the
sha256 of the canonical JSON of everything that determines the value (model fingerprint, prompt-template version,
parameters, input). ``put_many`` commits its whole mapping in one transaction, so a job that is interrupted keeps
every batch it finished and recomputes only what is missing. Several processes may share the file: sqlite's locks
serialise writers and a busy timeout makes them wait instead of failing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recllm.sqlite_files import connect_wal, is_busy
from recllm.utils import cache_dir

__all__ = ["DiskCache", "canonical_json"]

_DEFAULT_FILE = "cache.sqlite"
_CHUNK = 500  # keys per SELECT (well below sqlite's bound-parameter limit)
_KIND_JSON = "json"
_KIND_NPY = "npy"
_KIND_NPY_SCALAR = "npy_scalar"


def _canonical(obj: Any) -> Any:
    """``json.dumps`` fallback: turn the non-JSON types that commonly appear in key parts into stable JSON."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype.hasobject:
            return {"__ndarray__": arr.tolist(), "dtype": "object"}
        digest = hashlib.sha256(arr.tobytes()).hexdigest()
        return {"__ndarray__": digest, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=lambda v: json.dumps(v, sort_keys=True, default=_canonical))
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return {"__bytes__": hashlib.sha256(obj).hexdigest()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": type(obj).__qualname__, **dataclasses.asdict(obj)}
    raise TypeError(
        f"cannot build a cache key from a {type(obj).__name__}: pass JSON-able values "
        "(str, int, float, bool, None, lists, dicts), numpy arrays, paths or dataclasses"
    )


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text of ``obj`` (sorted keys, no whitespace, numpy and dataclasses made JSON)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical)


def _encode(value: Any) -> tuple[str, bytes]:
    """Serialise a value: numpy arrays as ``np.save`` bytes (dtype and shape kept), anything else as JSON."""
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError("DiskCache cannot store object-dtype numpy arrays; convert them to lists or numbers")
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return (_KIND_NPY_SCALAR if isinstance(value, np.generic) else _KIND_NPY), buf.getvalue()
    try:
        text = json.dumps(value, ensure_ascii=False)
    except TypeError as err:
        raise TypeError(
            f"DiskCache stores numpy arrays or JSON-able objects; got a {type(value).__name__} ({err})"
        ) from None
    return _KIND_JSON, text.encode("utf-8")


def _decode(kind: str, blob: bytes) -> Any:
    if kind == _KIND_JSON:
        return json.loads(blob.decode("utf-8"))
    if kind in (_KIND_NPY, _KIND_NPY_SCALAR):
        arr = np.load(io.BytesIO(blob), allow_pickle=False)
        return arr[()] if kind == _KIND_NPY_SCALAR else arr
    raise ValueError(f"unknown cache entry kind {kind!r}: the cache file was written by a newer recllm")


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (namespace TEXT NOT NULL, key TEXT NOT NULL, "
    "kind TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID;"
)


class DiskCache:
    """Sqlite-backed key -> value cache; values are numpy arrays or JSON-able objects.

    ``path`` defaults to ``cache.sqlite`` under ``recllm.utils.cache_dir()``; ``namespace`` separates unrelated
    users of one file (``len`` and ``clear`` act on this namespace only).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, namespace: str = "default",
                 timeout: float = 60.0) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"DiskCache namespace must be a non-empty string, got {namespace!r}")
        if timeout <= 0:
            raise ValueError(f"DiskCache timeout must be positive seconds, got {timeout!r}")
        self.path = Path(path) if path is not None else cache_dir() / _DEFAULT_FILE
        self.namespace = namespace
        self.timeout = float(timeout)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connect()  # fail early on an unusable path

    # -- keys -------------------------------------------------------------------------------------------------
    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 (hex) of the canonical JSON of ``parts``, e.g. ``key(model=lm.fingerprint, template="v1",
        params={"max_new_tokens": 8}, input=prompt)``; changing any part changes the key."""
        if not parts:
            raise ValueError("DiskCache.key needs at least one part (model fingerprint, parameters, input, ...)")
        return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()

    # -- connection ----------------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        """The connection of this process (reopened after a fork: sqlite handles must not cross processes)."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect_wal(self.path, timeout=self.timeout, schema=_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise OSError(self._open_failure(err)) from err
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open_failure(self, err: sqlite3.DatabaseError) -> str:
        """The one-line reason the cache file cannot be opened, with what to do."""
        if is_busy(err):
            return (f"cannot open the recllm cache {self.path}: another process held it locked for over "
                    f"{self.timeout:g} s; wait for it to finish or pass another path")
        return f"cannot open the recllm cache {self.path}: {err}. Delete the file or pass another path."

    def close(self) -> None:
        """Close the connection (it is reopened on the next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> DiskCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "namespace": self.namespace, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["namespace"], state["timeout"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"DiskCache(path={str(self.path)!r}, namespace={self.namespace!r})"

    # -- reads ---------------------------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys present in the cache; missing keys are absent from the result."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, Any] = {}
        with self._lock:
            conn = self._connect()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, kind, value FROM entries WHERE namespace = ? AND key IN ({marks})",
                    [self.namespace, *chunk],
                ).fetchall()
                for key, kind, blob in rows:
                    out[key] = _decode(kind, blob)
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is missing."""
        return self.get_many([key]).get(key, default)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        with self._lock:
            row = self._connect().execute(
                "SELECT 1 FROM entries WHERE namespace = ? AND key = ?", (self.namespace, key)
            ).fetchone()
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._connect().execute(
                "SELECT COUNT(*) FROM entries WHERE namespace = ?", (self.namespace,)
            ).fetchone()
        return int(count)

    # -- writes --------------------------------------------------------------------------------------------------
    def put_many(self, mapping: Mapping[str, Any]) -> None:
        """Store all entries of ``mapping`` (overwriting) in one transaction: all of them are kept, or none."""
        rows = []
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise TypeError(f"DiskCache keys are strings (see DiskCache.key); got {type(key).__name__}")
            kind, blob = _encode(value)
            rows.append((self.namespace, key, kind, blob))
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now; waits up to the busy timeout
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO entries (namespace, key, kind, value) VALUES (?, ?, ?, ?)", rows
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def put(self, key: str, value: Any) -> None:
        """Store one entry (committed at once)."""
        self.put_many({key: value})

    def clear(self) -> None:
        """Remove every entry of this namespace."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM entries WHERE namespace = ?", (self.namespace,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
