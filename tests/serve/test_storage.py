"""The EventStore contract, for SQLite and (when a local server binary and psycopg are present) PostgreSQL."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from recllm.serve.storage import IdempotencyConflict, SQLiteStore, StoredSummary


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else (os.path.dirname(shutil.which("pg_ctl")) if shutil.which("pg_ctl")
                                                     else None)


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on a unix socket (as user postgres when run as root); skipped without one."""
    pytest.importorskip("psycopg")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binary (apt-get install postgresql)")
    # its own folder under the system temp dir: pytest's is private to this user, and the server may run as postgres
    folder = Path(tempfile.mkdtemp(prefix="recllm-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    prefix = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run(prefix + list(cmd), check=True, capture_output=True, timeout=120)  # noqa: E731
    run(f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "recllm")
    run(f"{bindir}/pg_ctl", "-D", str(data), "-w", "-t", "60", "-l", str(folder / "log"), "-o",
        f"-k {sock} -p {port} -c listen_addresses=''", "start")
    try:
        yield f"postgresql://recllm@/postgres?host={sock}&port={port}"
    finally:
        run(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    if request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "s.db")
        return
    url = request.getfixturevalue("postgres_url")
    from recllm.serve.storage_pg import PostgresStore

    store = PostgresStore(url)
    for table in ("events", "items", "summaries"):
        store._db.execute(f"TRUNCATE {table} RESTART IDENTITY")
    store.close()
    yield lambda: PostgresStore(url)


def test_store_contract(make_store):
    store = make_store()
    first, new = store.add_event("k1", "u1", "i1", 5)
    assert new and first.seq == 1 and (first.user, first.item, first.timestamp) == ("u1", "i1", 5.0)
    again, new = store.add_event("k1", "u1", "i1", 5.0)
    assert not new and again == first
    with pytest.raises(IdempotencyConflict, match="k1"):
        store.add_event("k1", "u1", "i2", 5)
    store.add_event("k2", "u2", "i3", 6)
    store.add_event("k3", "u1", "i4", 7)
    assert [e.key for e in store.events()] == ["k1", "k2", "k3"]
    assert [e.item for e in store.events_for_user("u1")] == ["i1", "i4"]
    vector = np.linspace(-1, 1, 9).astype(np.float32)
    item, new = store.add_item("n1", "title: x", {"title": "x"}, vector)
    assert new and store.add_item("n1", "title: x", {"title": "x"}, vector)[1] is False
    with pytest.raises(IdempotencyConflict):
        store.add_item("n1", "title: y", {"title": "y"}, vector)
    assert store.get_summary("u1") is None
    store.put_summary(StoredSummary("u1", "likes x", 1, 5, time.time()))
    store.put_summary(StoredSummary("u1", "likes y", 2, 10, time.time()))
    store.close()
    reopened = make_store()  # everything was committed
    assert len(reopened.events()) == 3
    (saved,) = reopened.items()
    np.testing.assert_array_equal(saved.vector, vector)
    assert saved.fields == {"title": "x"} and saved.text == "title: x"
    summary = reopened.get_summary("u1")
    assert (summary.text, summary.version, summary.covered) == ("likes y", 2, 10)
    reopened.close()


def test_a_postgres_connection_the_server_dropped_is_opened_again(postgres_url):
    """PostgresStore held one connection: after a server restart or an idle timeout every request was a 500 until
    `recllm serve` was restarted."""
    import psycopg

    from recllm.serve.storage import StoreUnavailable
    from recllm.serve.storage_pg import PostgresStore

    store = PostgresStore(postgres_url)
    for table in ("events", "items", "summaries"):
        store._db.execute(f"TRUNCATE {table} RESTART IDENTITY")

    def drop() -> None:  # what a server restart does to the open connection
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))

    store.add_event("k1", "u", "i1", 1.0)
    drop()
    assert store.add_event("k2", "u", "i2", 2.0)[1]  # written on a new connection
    drop()
    assert not store.add_event("k1", "u", "i1", 1.0)[1]  # the replay of a stored event is still a replay
    assert [e.key for e in store.events()] == ["k1", "k2"]
    assert store._db.execute("SHOW synchronous_commit").fetchone()[0] == "on"  # the new session's setting
    store._url = postgres_url.replace("port=", "port=1")  # the server cannot be reached now
    drop()
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.events()
    store._url = postgres_url
    with pytest.raises(StoreUnavailable, match="a moment ago"):  # no new wait for a while: a 503 at once
        store.events()
    store._down_until = 0.0  # that while has passed
    assert len(store.events()) == 2  # and is used again once it can
    store.close()


def test_open_store_by_url(tmp_path):
    from recllm.errors import UserInputError
    from recllm.serve.storage import open_store

    store = open_store(None, tmp_path / "default.db")
    assert isinstance(store, SQLiteStore) and (tmp_path / "default.db").is_file()
    store.close()
    with pytest.raises(UserInputError, match="folder does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/x.db", tmp_path)
    bad = tmp_path / "not.db"
    bad.write_text("this is not a database" * 100)
    with pytest.raises(UserInputError, match="cannot open the database"):
        open_store(f"sqlite:///{bad}", tmp_path)


def test_a_database_of_another_program_is_refused_and_left_unchanged(tmp_path):
    import hashlib
    import sqlite3

    from recllm.errors import UserInputError

    def made(name: str, sql: str) -> Path:
        path = tmp_path / name
        db = sqlite3.connect(str(path))
        db.executescript(sql)
        db.commit()
        db.close()
        return path

    other = made("other.db", "CREATE TABLE mine (x INTEGER); INSERT INTO mine VALUES (1);")
    clash = made("clash.db", "CREATE TABLE events (id INTEGER, what TEXT); CREATE TABLE items (id INTEGER);")
    wal = made("wal.db", 'PRAGMA journal_mode = WAL; CREATE TABLE "odd ""name" (x); INSERT INTO "odd ""name" VALUES (1);')
    # no table at all: a view named like one of recllm's, or only a setting (sqlite writes the header page)
    view = made("view.db", "CREATE VIEW events AS SELECT 1 AS x;")
    views = made("views.db", "CREATE TABLE notes (x); CREATE VIEW settings AS SELECT x FROM notes; DROP TABLE notes;")
    setting = made("setting.db", "PRAGMA user_version = 7;")
    own_and_more = tmp_path / "more.db"
    SQLiteStore(own_and_more).close()  # recllm's file ...
    db = sqlite3.connect(str(own_and_more))  # ... with another program's trigger added
    db.execute("CREATE TRIGGER audit AFTER INSERT ON events BEGIN SELECT 1; END")
    db.commit()
    db.close()
    cases = ((other, r"holds objects `recllm serve` did not make \(table mine\)"),
             (clash, r"did not make \(table events, table items\)"),
             (wal, r'did not make \(table odd "name\)'),
             (view, r"did not make \(view events\)"),
             (views, r"did not make \(view settings\)"),
             (setting, r"lacks the tables `recllm serve` makes with every database \(events, items, summaries\)"),
             (own_and_more, r"did not make \(trigger audit\)"))
    for path, message in cases:
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        with pytest.raises(UserInputError, match=message):
            SQLiteStore(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(path.name)) == [path.name]
    # recllm's own file, reopened after a clean close and while another connection holds it
    own = tmp_path / "own.db"
    first = SQLiteStore(own)
    first.add_event("k1", "u", "i", 1.0)
    first.close()
    again, beside = SQLiteStore(own), SQLiteStore(own)
    assert [e.key for e in beside.events()] == ["k1"]
    again.close()
    beside.close()


def test_an_empty_file_is_the_users_and_never_becomes_a_database(tmp_path):
    """`: > notes.txt; recllm serve --db sqlite:///notes.txt` turned the user's file into a database. recllm creates
    its database whole (built beside, linked into place), so an empty file at the path is never one it made."""
    from recllm.errors import UserInputError
    from recllm.serve.storage import check_store

    empty = tmp_path / "notes.txt"
    empty.touch()
    for attempt in (lambda: check_store(f"sqlite:///{empty}", tmp_path), lambda: SQLiteStore(empty)):
        with pytest.raises(UserInputError, match=r"database file is empty.*delete the empty file, or give --db a new"):
            attempt()
    assert empty.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    old = os.umask(0o022)
    try:
        store = SQLiteStore(tmp_path / "new.db")
    finally:
        os.umask(old)
    store.add_event("k1", "u", "i", 1.0)
    store.close()
    assert (tmp_path / "new.db").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "notes.txt"]  # no temporary file left
    assert [e.key for e in SQLiteStore(tmp_path / "new.db").events()] == ["k1"]


def test_a_postgres_schema_with_tables_of_another_program_is_refused_and_left_unchanged(postgres_url):
    """Tables named like ours but made by another program (or a view) are never written to, indexed or extended."""
    import psycopg

    from recllm.errors import UserInputError
    from recllm.serve.storage_pg import PostgresStore

    def database(name: str, sql: str) -> str:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
        url = postgres_url.replace("@/postgres?", f"@/{name}?")
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(sql)
        return url

    def catalogue(url: str) -> list[tuple]:
        with psycopg.connect(url) as db:
            relations = db.execute("SELECT relname, relkind::text FROM pg_class c JOIN pg_namespace n "
                                   "ON n.oid = c.relnamespace WHERE nspname = 'public' ORDER BY relname").fetchall()
            return relations + db.execute("SELECT * FROM events").fetchall() + db.execute(
                "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1").fetchall()

    cases = {
        "clash": ("CREATE TABLE events (id INTEGER, what TEXT); INSERT INTO events VALUES (1, 'mine')", "events"),
        "view": ("CREATE TABLE t (seq INT); INSERT INTO t VALUES (7); "
                 "CREATE VIEW events AS SELECT seq FROM t", "events"),
        "types": ("CREATE TABLE events (seq INT, key INT, user_id INT, item_id INT, ts INT, received INT); "
                  "INSERT INTO events VALUES (1, 2, 3, 4, 5, 6)", "events"),
        "index": ("CREATE TABLE events (x INT); CREATE TABLE t (user_id TEXT); CREATE INDEX events_user ON t "
                  "(user_id)", "events, events_user"),
    }
    for name, (sql, named) in cases.items():
        url = database(f"other_{name}", sql)
        before = catalogue(url)
        with pytest.raises(UserInputError, match=rf"did not make \({named}\); the database was left unchanged"):
            PostgresStore(url)
        assert catalogue(url) == before
    # a database with other tables beside ours is served, and recllm's own tables are recognised when reopened
    url = database("beside", "CREATE TABLE mine (x INTEGER)")
    first = PostgresStore(url)
    first.add_event("k1", "u", "i", 1.0)
    first.close()
    again = PostgresStore(url)
    assert [e.key for e in again.events()] == ["k1"]
    again.close()


def test_without_psycopg_a_postgresql_url_is_one_line(monkeypatch):
    import sys

    from recllm.errors import UserInputError
    from recllm.serve.storage import check_store, open_store

    monkeypatch.setitem(sys.modules, "psycopg", None)
    for call in (lambda: open_store("postgresql://u@h/db", Path(".")), lambda: check_store("postgres://u@h/db", None)):
        with pytest.raises(UserInputError, match=r"needs psycopg.*recllm\[serve-postgres\]"):
            call()
