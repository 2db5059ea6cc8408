"""Durable storage of the service: events (with idempotency keys), added items and users' summaries.

One small interface, :class:`EventStore`, so that a server database can replace the embedded default by URL:
``sqlite:///path/to/serve.db`` (the default, a file under the LEARN run folder) is :class:`SQLiteStore`; a
``postgresql://`` URL is :class:`recllm.serve.storage_pg.PostgresStore` (psycopg 3).

SQLite runs in WAL mode with ``synchronous=FULL``: a write returns only after its transaction is on disk, so an
event the service acknowledged survives a crash or a power cut. Idempotency keys are a ``UNIQUE`` column; a key
seen before returns the stored event, never a second row.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from recllm.errors import UserInputError
from recllm.sqlite_files import connect_wal, create_database

__all__ = ["StoredEvent", "StoredItem", "StoredSummary", "EventStore", "SQLiteStore", "IdempotencyConflict",
           "StoreUnavailable", "check_url", "open_store"]


@dataclass(frozen=True)
class StoredEvent:
    """An acknowledged interaction; ``seq`` is its place in the order of acknowledgement (1, 2, ...)."""

    seq: int
    key: str
    user: str
    item: str
    timestamp: float
    received: float


@dataclass(frozen=True)
class StoredItem:
    """An item added while serving: its text, raw content embedding (before whitening) and when it came."""

    seq: int
    item: str
    text: str
    fields: dict
    vector: np.ndarray
    received: float


@dataclass(frozen=True)
class StoredSummary:
    """A user's LLM summary: ``covered`` history items went into it; ``version`` counts its updates."""

    user: str
    text: str
    version: int
    covered: int
    updated: float


class StoreUnavailable(RuntimeError):
    """The store's server cannot be reached now (the service answers 503; the request may be retried)."""


class IdempotencyConflict(UserInputError):
    """An idempotency key (or item id) reused with a different payload."""


class EventStore(Protocol):
    """What the service needs from a database; every write is durable when the call returns."""

    def add_event(self, key: str, user: str, item: str, timestamp: float) -> tuple[StoredEvent, bool]:
        """Store an event under ``key`` -> (the stored event, True if new). Same key, same payload: the original
        event and False; same key, another payload: :class:`IdempotencyConflict`."""

    def events(self) -> list[StoredEvent]:
        """Every event, in acknowledgement order."""

    def events_for_user(self, user: str) -> list[StoredEvent]:
        """One user's events, in acknowledgement order."""

    def add_item(self, item: str, text: str, fields: dict, vector: np.ndarray) -> tuple[StoredItem, bool]:
        """Store an added item -> (stored, True if new); the same id with other text: IdempotencyConflict."""

    def items(self) -> list[StoredItem]:
        """Every added item, in the order they were added."""

    def get_summary(self, user: str) -> StoredSummary | None: ...

    def put_summary(self, summary: StoredSummary) -> None: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts REAL NOT NULL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    fields TEXT NOT NULL,
    vector BLOB NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS summaries (
    user_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    version INTEGER NOT NULL,
    covered INTEGER NOT NULL,
    updated REAL NOT NULL
);
"""


def same_event(event: StoredEvent, new: bool, key: str, user: str, item: str, timestamp: float
               ) -> tuple[StoredEvent, bool]:
    """``(event, new)`` after an idempotent insert; a reused key with another payload is an IdempotencyConflict."""
    if not new and (event.user, event.item, event.timestamp) != (user, item, float(timestamp)):
        raise IdempotencyConflict(f"idempotency key {key!r} was used for another event (user {event.user!r}, "
                                  f"item {event.item!r})", "idempotency_key", "use a new key for a new event")
    return event, new


def same_item(stored: StoredItem, new: bool, item: str, text: str) -> tuple[StoredItem, bool]:
    """``(stored, new)`` after an idempotent item insert; the same id with another text is an IdempotencyConflict."""
    if not new and stored.text != text:
        raise IdempotencyConflict(f"item {item!r} was already added with another text", "id",
                                  "give the new item its own id")
    return stored, new


def _schema_objects(db: sqlite3.Connection) -> dict[str, list[str] | None]:
    """``"<type> <name>"`` -> column names (tables; None: a table whose columns cannot be read, e.g. a virtual table
    of a module this sqlite lacks) or ``[]`` (indexes, views, triggers) for every object of a SQLite database,
    sqlite's own left out."""
    rows = db.execute("SELECT type, name FROM sqlite_master").fetchall()
    out: dict[str, list[str] | None] = {}
    for kind, name in rows:
        if name.startswith("sqlite_"):
            continue
        if kind != "table":
            out[f"{kind} {name}"] = []
            continue
        try:
            out[f"table {name}"] = [r[0] for r in db.execute("SELECT name FROM pragma_table_info(?)", (name,))]
        except sqlite3.DatabaseError:
            out[f"table {name}"] = None
    return out


def _own_objects() -> dict[str, list[str] | None]:
    """The objects :data:`_SCHEMA` makes (tables with their columns, indexes)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.executescript(_SCHEMA)
        return _schema_objects(db)


def refuse_foreign_database(path: Path) -> None:
    """A UserInputError when ``path`` is an existing SQLite file that is not exactly what ``recllm serve`` makes --
    a table, view, index or trigger it does not make, one of its tables with other columns, or one of its tables
    missing (it creates every table at once, so a file without them, e.g. one holding only views or nothing, is
    another program's) -- or an empty file: recllm creates its database whole where none exists
    (:func:`recllm.sqlite_files.create_database`), so an empty file is the user's (e.g. ``: > notes.txt``) and
    would become a database. Read only: the file's bytes are never written, and the empty ``-wal``/``-shm`` files
    sqlite makes to read a WAL database are removed again, so another program's database is left as it was; a new
    path passes."""
    if not path.is_file():
        return
    if path.stat().st_size == 0:
        raise UserInputError("the database file is empty, so `recllm serve` did not make it (it creates its "
                             "database itself, whole, where none exists); it was left unchanged", str(path),
                             "delete the empty file, or give --db a new path")
    beside = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    existed = [p.exists() for p in beside]
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = _schema_objects(db)
    except sqlite3.DatabaseError as exc:
        raise UserInputError(f"cannot open the database ({exc})", str(path),
                             "give --db a SQLite file written by `recllm serve`, or a new path") from None
    own = _own_objects()
    foreign = sorted(n for n, cols in found.items() if cols is None or own.get(n) != cols)
    missing = sorted(n.split(" ", 1)[1] for n in own if n.startswith("table ") and n not in found)
    if foreign or missing:
        wal, shm = beside
        if not any(existed) and wal.exists() and wal.stat().st_size == 0:  # made by the read above, and empty
            wal.unlink()
            shm.unlink(missing_ok=True)
        what = (f"holds objects `recllm serve` did not make ({', '.join(foreign)})" if foreign else
                f"lacks the tables `recllm serve` makes with every database ({', '.join(missing)})")
        raise UserInputError(f"the database {what}, so it is another program's; it was left unchanged", str(path),
                             "give --db a new path or a file written by `recllm serve`")


class SQLiteStore:
    """:class:`EventStore` in one SQLite file (WAL, ``synchronous=FULL``); safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.parent.is_dir():
            raise UserInputError("the database's folder does not exist", str(self.path.parent),
                                 "create it, or give --db sqlite:///<existing folder>/serve.db")
        try:
            if not self.path.exists():
                create_database(self.path, schema=_SCHEMA)
            refuse_foreign_database(self.path)  # also what appeared there meanwhile, if another process was first
            self._db = connect_wal(self.path, timeout=30, schema=_SCHEMA, synchronous="FULL")
        except sqlite3.DatabaseError as exc:
            raise UserInputError(f"cannot open the database ({exc})", str(self.path),
                                 "give --db a SQLite file written by `recllm serve`, or a new path") from None
        self._lock = threading.Lock()

    def _write(self, sql_select: str, select_args: tuple, sql_insert: str, insert_args: tuple) -> tuple[tuple, bool]:
        """Look the key up and insert it if absent, in one immediate transaction -> (row, inserted)."""
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                row = cur.execute(sql_select, select_args).fetchone()
                if row is None:
                    cur.execute(sql_insert, insert_args)
                    row = cur.execute(sql_select, select_args).fetchone()
                    cur.execute("COMMIT")
                    return row, True
                cur.execute("COMMIT")
                return row, False
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def add_event(self, key: str, user: str, item: str, timestamp: float) -> tuple[StoredEvent, bool]:
        row, new = self._write("SELECT seq, key, user_id, item_id, ts, received FROM events WHERE key = ?", (key,),
                               "INSERT INTO events (key, user_id, item_id, ts, received) VALUES (?, ?, ?, ?, ?)",
                               (key, user, item, float(timestamp), time.time()))
        return same_event(StoredEvent(*row), new, key, user, item, timestamp)

    def events(self) -> list[StoredEvent]:
        with self._lock:
            rows = self._db.execute("SELECT seq, key, user_id, item_id, ts, received FROM events ORDER BY seq")
            return [StoredEvent(*r) for r in rows.fetchall()]

    def events_for_user(self, user: str) -> list[StoredEvent]:
        with self._lock:
            rows = self._db.execute("SELECT seq, key, user_id, item_id, ts, received FROM events WHERE user_id = ? "
                                    "ORDER BY seq", (user,))
            return [StoredEvent(*r) for r in rows.fetchall()]

    def add_item(self, item: str, text: str, fields: dict, vector: np.ndarray) -> tuple[StoredItem, bool]:
        blob = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        row, new = self._write("SELECT seq, item_id, text, fields, vector, received FROM items WHERE item_id = ?",
                               (item,), "INSERT INTO items (item_id, text, fields, vector, received) "
                               "VALUES (?, ?, ?, ?, ?)", (item, text, json.dumps(fields), blob, time.time()))
        return same_item(_item(row), new, item, text)

    def items(self) -> list[StoredItem]:
        with self._lock:
            rows = self._db.execute("SELECT seq, item_id, text, fields, vector, received FROM items ORDER BY seq")
            return [_item(r) for r in rows.fetchall()]

    def get_summary(self, user: str) -> StoredSummary | None:
        with self._lock:
            row = self._db.execute("SELECT user_id, text, version, covered, updated FROM summaries WHERE user_id = ?",
                                   (user,)).fetchone()
        return StoredSummary(*row) if row else None

    def put_summary(self, summary: StoredSummary) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO summaries (user_id, text, version, covered, updated) "
                             "VALUES (?, ?, ?, ?, ?)", (summary.user, summary.text, summary.version, summary.covered,
                                                        summary.updated))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _item(row: tuple) -> StoredItem:
    seq, item, text, fields, blob, received = row
    return StoredItem(seq, item, text, json.loads(fields), np.frombuffer(blob, dtype="<f4").astype(np.float32),
                      received)


def check_url(url: str | None) -> None:
    """A ``--db`` URL this recllm can open (checked before any model is loaded)."""
    if url is None or url.startswith("sqlite:///"):
        return
    if url.startswith(("postgresql://", "postgres://")):
        return
    raise UserInputError(f"unknown database URL {url!r}", "--db",
                         "give sqlite:///<path to a .db file> or postgresql://user@host/database")


def check_store(url: str | None, default: Path) -> None:
    """What :func:`open_store` would refuse, found without writing anything (so before any model is loaded): an
    unknown URL, a SQLite file's missing folder, a file that is not a database or holds another program's tables;
    for PostgreSQL, a server that does not answer or a schema holding relations named like ours."""
    check_url(url)
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        from recllm.serve.storage_pg import check_database

        check_database(url)
        return
    path = Path(default if url is None else url[len("sqlite:///"):]).expanduser()
    if not path.parent.is_dir():
        raise UserInputError("the database's folder does not exist", str(path.parent),
                             "create it, or give --db sqlite:///<existing folder>/serve.db")
    if path.is_dir():
        raise UserInputError("the database path is a folder", str(path), "give --db a file path, e.g. .../serve.db")
    refuse_foreign_database(path)


def open_store(url: str | None, default: Path) -> EventStore:
    """The store a ``--db`` URL names (``None``: SQLite at ``default``)."""
    check_url(url)
    if url is None:
        return SQLiteStore(default)
    if url.startswith(("postgresql://", "postgres://")):
        from recllm.serve.storage_pg import PostgresStore

        return PostgresStore(url)
    return SQLiteStore(url[len("sqlite:///"):])  # SQLAlchemy's form: sqlite:///rel.db, sqlite:////abs.db
