"""Opening SQLite files that several processes share (the LLM cache, the service's event store).

A new file is switched to WAL on first open. When several processes open it at once (the ranks of a distributed
job, two service processes), switching the journal mode and WAL recovery answer SQLITE_BUSY without calling
sqlite's busy handler, so :func:`connect_wal` waits and retries itself until its timeout. :func:`create_database`
makes a new file whole (built beside it and linked into place), so an empty file at a database path is never one
recllm made.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import tempfile
import time
from pathlib import Path

__all__ = ["connect_wal", "create_database", "is_busy"]


def is_busy(err: sqlite3.DatabaseError) -> bool:
    """True when sqlite refused because another connection holds a lock (worth waiting for)."""
    text = str(err).lower()
    return "locked" in text or "busy" in text


def _open_once(path: Path, timeout: float, synchronous: str, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_wal(path: Path, *, timeout: float, schema: str, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode with ``schema`` (idempotent SQL) applied.

    Waits up to ``timeout`` seconds for other processes' locks; raises ``sqlite3.OperationalError`` (see
    :func:`is_busy`) when they hold it longer, and ``sqlite3.DatabaseError`` when the file is not a database.
    """
    if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
    deadline = time.monotonic() + timeout
    for attempt in itertools.count():
        try:
            return _open_once(path, timeout, synchronous, schema)
        except sqlite3.OperationalError as err:
            if not is_busy(err) or time.monotonic() >= deadline:
                raise
            time.sleep(min(0.005 * 2 ** min(attempt, 8), 0.5))
    raise AssertionError("unreachable")


def create_database(path: Path, *, schema: str) -> None:
    """Make a new SQLite file at ``path`` in WAL mode with ``schema`` applied, appearing there whole: it is built in
    a temporary file beside ``path`` and hard-linked into place, which never replaces a file that appeared there
    meanwhile (another process's database is then left to the caller's checks). So a crash, or a second process
    opening the path at the same moment, never finds an empty file recllm made (sqlite's own create would leave one)."""
    from recllm.utils import give_normal_modes

    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        give_normal_modes(tmp)  # mkstemp's 0600: the database gets the permissions sqlite's own create gives
        _open_once(tmp, 5.0, "FULL", schema).close()  # the last connection's close folds the WAL into the file
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: check, then rename (a short window, not none)
            if not path.exists():
                os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
