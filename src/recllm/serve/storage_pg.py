"""The :class:`~recllm.serve.storage.EventStore` in PostgreSQL (``--db postgresql://...``; needs psycopg 3).

The same three tables as the SQLite store, in the connection's current schema. A schema that already holds a
relation of one of those names that ``recllm serve`` did not make (another column list, or a view) is refused before
anything is written, so another program's ``events`` table never receives our rows or our index. Each write is one
transaction committed with ``synchronous_commit = on`` (the server's default, set explicitly), so an acknowledged
event is on the server's disk; idempotency is the ``UNIQUE`` key with ``INSERT ... ON CONFLICT DO NOTHING``. One
connection behind a lock: writes are serialised as they are in SQLite (a connection pool is the next step for many
concurrent writers). A connection the server dropped (a restart, an idle timeout, a terminated backend) is opened
again and the statement run once more -- safe, as every write is idempotent (an event whose first attempt did commit
comes back as already stored, and the service, which had not applied it, applies it then); while the server cannot
be reached, each request is a :class:`StoreUnavailable` (a reconnection waits at most RECONNECT_SECONDS, and after a
failed one none is tried for as long).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from recllm.errors import UserInputError
from recllm.serve.storage import StoredEvent, StoredItem, StoredSummary, StoreUnavailable, same_event, same_item

__all__ = ["PostgresStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGSERIAL PRIMARY KEY, key TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS items (
    seq BIGSERIAL PRIMARY KEY, item_id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, fields TEXT NOT NULL,
    vector BYTEA NOT NULL, received DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS summaries (
    user_id TEXT PRIMARY KEY, text TEXT NOT NULL, version INTEGER NOT NULL, covered INTEGER NOT NULL,
    updated DOUBLE PRECISION NOT NULL);
"""
# The columns of each table _SCHEMA makes, in order, with their types as format_type prints them: an existing
# relation of that name must have exactly these.
_OWN_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "events": [("seq", "bigint"), ("key", "text"), ("user_id", "text"), ("item_id", "text"),
               ("ts", "double precision"), ("received", "double precision")],
    "items": [("seq", "bigint"), ("item_id", "text"), ("text", "text"), ("fields", "text"), ("vector", "bytea"),
              ("received", "double precision")],
    "summaries": [("user_id", "text"), ("text", "text"), ("version", "integer"), ("covered", "integer"),
                  ("updated", "double precision")],
}
_OWN_INDEX = ("events_user", "events")  # the index _SCHEMA makes, and its table
_EVENT = "seq, key, user_id, item_id, ts, received"
_SESSION = "SET synchronous_commit = on"  # each connection's settings
RECONNECT_SECONDS = 5  # how long a reconnection may wait, and how long after a failed one none is tried


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
_ITEM = "seq, item_id, text, fields, vector, received"


def check_database(url: str) -> None:
    """What :class:`PostgresStore` would refuse (no psycopg, no server, another program's tables), found by reading
    the catalogue only; the connection is closed again."""
    db = _connect(url)
    try:
        _refuse_foreign_tables(db)
    finally:
        db.close()


def _connect(url: str):
    try:
        import psycopg
    except ImportError:
        raise UserInputError("a postgresql:// database needs psycopg", "--db",
                             "pip install 'recllm[serve-postgres]'") from None
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        raise UserInputError(f"cannot connect to the database ({_one_line(exc)})", "--db",
                             "check the URL, the server and the credentials") from None


class PostgresStore:
    """:class:`~recllm.serve.storage.EventStore` on a PostgreSQL server (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._db = _connect(url)  # first: without psycopg it says what to install
        import psycopg

        try:
            self._db.execute(_SESSION)
            _refuse_foreign_tables(self._db)
            with self._db.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._db.execute(statement)
        except psycopg.Error as exc:
            self._db.close()
            raise UserInputError(f"cannot create recllm serve's tables ({_one_line(exc)}); nothing was "
                                 "written", "--db", "give a database of its own, or one written by `recllm serve`, "
                                 "where this user may create tables") from None
        except UserInputError:
            self._db.close()
            raise
        self._lock = threading.Lock()
        self._closed = False
        self._down_until = 0.0  # after a failed reconnection, requests get StoreUnavailable at once until then

    def _run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` under the lock; a connection the server dropped is opened again and ``work`` run once
        more (every write here is idempotent)."""
        import psycopg

        with self._lock:
            if self._closed:
                raise RuntimeError("the PostgreSQL store is closed")
            for attempt in (0, 1):
                if self._db.broken or self._db.closed:
                    self._reopen()
                try:
                    return work(self._db)
                except psycopg.OperationalError as exc:
                    if not (self._db.broken or self._db.closed):
                        raise
                    if attempt:  # dropped again right after reconnecting
                        raise StoreUnavailable(f"the PostgreSQL server dropped the connection ({_one_line(exc)})"
                                               ) from None
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        """A new connection, waiting at most RECONNECT_SECONDS; after a failure, none is tried for as long (each
        request meanwhile is a StoreUnavailable at once, not another wait under the service's locks)."""
        import psycopg

        if time.monotonic() < self._down_until:
            raise StoreUnavailable("the PostgreSQL server could not be reached a moment ago")
        try:
            db = psycopg.connect(self._url, autocommit=True, connect_timeout=RECONNECT_SECONDS)
            db.execute(_SESSION)
        except psycopg.Error as exc:
            self._down_until = time.monotonic() + RECONNECT_SECONDS
            raise StoreUnavailable(f"the PostgreSQL server cannot be reached ({_one_line(exc)})") from None
        self._db.close()
        self._db = db

    def _insert(self, insert: str, args: tuple, select: str, key: tuple) -> tuple[tuple, bool]:
        def work(db: Any) -> tuple[tuple, bool]:
            with db.transaction():
                row = db.execute(insert, args).fetchone()
                if row is not None:
                    return row, True
                return db.execute(select, key).fetchone(), False

        return self._run(work)

    def add_event(self, key: str, user: str, item: str, timestamp: float) -> tuple[StoredEvent, bool]:
        row, new = self._insert(
            f"INSERT INTO events (key, user_id, item_id, ts, received) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (key) DO NOTHING RETURNING {_EVENT}", (key, user, item, float(timestamp), time.time()),
            f"SELECT {_EVENT} FROM events WHERE key = %s", (key,))
        return same_event(StoredEvent(*row), new, key, user, item, timestamp)

    def events(self) -> list[StoredEvent]:
        rows = self._run(lambda db: db.execute(f"SELECT {_EVENT} FROM events ORDER BY seq").fetchall())
        return [StoredEvent(*r) for r in rows]

    def events_for_user(self, user: str) -> list[StoredEvent]:
        rows = self._run(lambda db: db.execute(f"SELECT {_EVENT} FROM events WHERE user_id = %s ORDER BY seq",
                                               (user,)).fetchall())
        return [StoredEvent(*r) for r in rows]

    def add_item(self, item: str, text: str, fields: dict, vector: np.ndarray) -> tuple[StoredItem, bool]:
        blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        row, new = self._insert(
            f"INSERT INTO items (item_id, text, fields, vector, received) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (item_id) DO NOTHING RETURNING {_ITEM}", (item, text, json.dumps(fields), blob, time.time()),
            f"SELECT {_ITEM} FROM items WHERE item_id = %s", (item,))
        return same_item(_item(row), new, item, text)

    def items(self) -> list[StoredItem]:
        rows = self._run(lambda db: db.execute(f"SELECT {_ITEM} FROM items ORDER BY seq").fetchall())
        return [_item(r) for r in rows]

    def get_summary(self, user: str) -> StoredSummary | None:
        row = self._run(lambda db: db.execute("SELECT user_id, text, version, covered, updated FROM summaries "
                                              "WHERE user_id = %s", (user,)).fetchone())
        return StoredSummary(*row) if row else None

    def put_summary(self, summary: StoredSummary) -> None:
        self._run(lambda db: db.execute(
            "INSERT INTO summaries (user_id, text, version, covered, updated) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (user_id) DO UPDATE SET text = EXCLUDED.text, version = EXCLUDED.version, "
            "covered = EXCLUDED.covered, updated = EXCLUDED.updated",
            (summary.user, summary.text, summary.version, summary.covered, summary.updated)))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()


def _refuse_foreign_tables(db: object) -> None:
    """A UserInputError when the current schema holds a relation named like one of ours that ``recllm serve`` did not
    make (other columns, or not a table); reads the catalogue only."""
    schema = db.execute("SELECT current_schema()").fetchone()[0]
    if schema is None:
        raise UserInputError("the database connection has no schema to create tables in (its search_path names "
                             "none that exists)", "--db",
                             "set the user's search_path, e.g. add ?options=-csearch_path%3Dpublic to the URL")
    rows = db.execute(
        "SELECT c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) ORDER BY c.relname, a.attnum",
        (schema, [*_OWN_COLUMNS, _OWN_INDEX[0]])).fetchall()
    found: dict[str, tuple[set[str], list[tuple[str, str]]]] = {}
    for name, kind, column, kind_of_column in rows:
        kinds, columns = found.setdefault(name, (set(), []))
        kinds.add(kind)
        if column is not None:
            columns.append((column, kind_of_column))
    index, on = _OWN_INDEX
    foreign = sorted(name for name, (kinds, columns) in found.items()
                     if name != index and (not kinds <= {"r", "p"} or columns != _OWN_COLUMNS[name]))
    if index in found:  # ours only as an index on our events table
        table = db.execute("SELECT t.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                           "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname = %s AND c.relname = %s", (schema, index)).fetchone()
        if table is None or table[0] != on or on in foreign:
            foreign.append(index)
    if foreign:
        raise UserInputError(f"schema {schema!r} holds relations named like `recllm serve`'s tables that it did not "
                             f"make ({', '.join(foreign)}); the database was left unchanged", "--db",
                             "give a database of its own (e.g. CREATE DATABASE recllm_serve) or one written by "
                             "`recllm serve`")


def _item(row: tuple) -> StoredItem:
    seq, item, text, fields, blob, received = row
    return StoredItem(seq, item, text, json.loads(fields), np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32),
                      received)
