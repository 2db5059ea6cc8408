"""A real `recllm serve` process on a loopback port: SIGKILL while a client streams events, restart, and every
acknowledged event is stored exactly once (bounded: every wait has a deadline; the server is killed at the end)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from serve_helpers import AUTH, TOKEN

httpx = pytest.importorskip("httpx")

START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(artifact: Path, db: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RECLLM_TOKEN": TOKEN}
    command = [sys.executable, "-m", "recllm.cli", "serve", "--learn", str(artifact), "--db", f"sqlite:///{db}",
               "--port", str(port), "--no-encoder", "--quiet", "--threads", "1"]
    began = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the server did not answer /health within {START_SECONDS} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


def _event(n: int) -> dict:
    return {"user": "u5", "item": f"i{n % 30}", "timestamp": n, "idempotency_key": f"stream-{n}"}


def test_sigkill_while_streaming_events_loses_no_acknowledged_event(artifact, tmp_path):
    db, port = tmp_path / "kill.db", _free_port()
    proc, _ = _start(artifact, db, port)
    acked: list[str] = []
    enough = threading.Event()

    def killer() -> None:
        if enough.wait(timeout=120):
            time.sleep(0.05)  # mid-stream
        os.killpg(proc.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sent = 0
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=10) as client:
            while sent < 100_000:
                response = client.post("/events", json=_event(sent))
                assert response.status_code == 201, response.text
                acked.append(_event(sent)["idempotency_key"])
                sent += 1
                if len(acked) >= 25:
                    enough.set()
    except httpx.TransportError:
        pass  # the server died under the client
    finally:
        thread.join(timeout=30)
        _stop(proc)
    assert len(acked) >= 25 and proc.returncode == -signal.SIGKILL
    unacknowledged = _event(sent)  # the one in flight when the server died (stored or not)

    proc, restart_seconds = _start(artifact, db, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=10) as client:
            history = client.get("/users/u5/history").json()["items"]
            retried = client.post("/events", json=unacknowledged)  # the client retries with the same key
            assert retried.status_code in (200, 201)
            again = client.post("/events", json=_event(0))
            assert again.status_code == 200 and again.json()["seq"] == 1
            after = client.get("/users/u5/history").json()["items"]
    finally:
        _stop(proc)
    with sqlite3.connect(db) as con:
        keys = [k for (k,) in con.execute("SELECT key FROM events ORDER BY seq")]
    assert keys[:len(acked)] == acked  # every acknowledged event, once, in order
    assert keys == acked + [unacknowledged["idempotency_key"]]  # and the retried one, once
    trained = 10
    assert len(history) in (trained + len(acked), trained + len(acked) + 1)
    assert len(after) == trained + len(acked) + 1
    assert restart_seconds < START_SECONDS


def test_load_report_on_the_tiny_artifact(artifact, tmp_path):
    """The load/fault tool end to end at tiny sizes (its figures on a real run go to docs/results/serve.md)."""
    from recllm.serve.load import run
    from recllm.serve.load_report import report

    result = run(Path(artifact), None, clients=[1, 2], requests=6, encoder=False, kill_after=40)  # stand-in encoder
    assert [r["clients"] for r in result["latency"]] == [1, 2]
    assert all(r["requests"] == 6 and r["p50_ms"] <= r["p99_ms"] and r["rps"] > 0 for r in result["latency"])
    fault = result["fault"]
    assert fault["acknowledged"] >= 40 and fault["missing"] == 0 and fault["duplicates"] == 0
    assert fault["acknowledged_present_once"] == fault["acknowledged"] and fault["never_sent_stored"] == 0
    assert fault["in_flight_retry_code"] == (200 if fault["in_flight_stored_before_retry"] else 201)
    assert fault["in_flight_stored_once_after_retry"] and fault["replay_code"] == 200
    assert fault["history_after_restart"] == fault["stored_after_restart"]
    assert fault["history_after_retry"] == fault["stored_after_retry"] == fault["acknowledged"] + 1
    assert len(result["bad_requests"]) >= 10
    assert all(expected == got and one_line for _, expected, got, one_line in result["bad_requests"])
    assert result["new_item"] is None and result["load"]["samples"] >= 2 and result["load"]["max"] >= 0
    text = report(result, "python -m recllm.serve.load --learn X", "commit abc")
    assert "| none | 2 | 6 |" in text and "Not measured" in text and "MISMATCH" not in text
    flops = result["flops"]  # counted in this process on the artifact loaded as the server loads it
    assert list(flops) == ["none"] and flops["none"]["flops"] > 0 and flops["none"]["peak"] > 0
    assert flops["none"]["dtype"] == "float32" and flops["none"]["threads"] == 1
    assert "| n/a | n/a |" not in text and "float32," in text
    assert "- source: commit abc" in text and ("CPU used by other processes during the run" in text or not os.path.isfile("/proc/stat"))
    from recllm.outputs import is_generated_report

    (tmp_path / "serve.md").write_text(text, encoding="utf-8")
    assert is_generated_report(tmp_path / "serve.md")  # a rerun may replace it


def test_load_cli_refuses_a_folder_that_is_not_a_run_in_one_line(tmp_path, capsys):
    from recllm.serve.load import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--learn", str(tmp_path), "--out", str(tmp_path / "serve.md")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has no user_ids.json" in err and "--learn" in err
    assert not (tmp_path / "serve.md").exists()
