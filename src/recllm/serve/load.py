"""Load and fault test of ``recllm serve`` on a loopback port, as a report: ``python -m recllm.serve.load``.

    python -m recllm.serve.load --learn runs/learn-ml100k [--trsr RUN] [--clients 1 4 16] [--requests 200]
                                [--out docs/results/serve.md]

Everything is bounded and stops by itself: the server is a child process on a free 127.0.0.1 port with a fresh
database in a temporary folder (the run's own ``serve.db`` is never touched), every wait has a deadline, and the
server is killed at the end. Measured: latency percentiles and requests/s of ``/recommend`` (and ``rerank=llm``
with ``--trsr``) at each client count; POST-to-recommendable latency of a new item; SIGKILL while a client streams
events, restart time, and whether every acknowledged event is stored exactly once; the code of each bad request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Server", "main", "run"]

START_SECONDS = 300


class Server:
    """``recllm serve`` as a child process on a free loopback port (``start``/``kill``; a context manager)."""

    def __init__(self, learn: Path, db: Path, trsr: Path | None = None, threads: int = 1,
                 encoder: bool = True) -> None:
        self.learn, self.db, self.trsr, self.threads, self.encoder = learn, db, trsr, threads, encoder
        self.token = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start and wait for /health -> seconds to ready."""
        import httpx

        command = [sys.executable, "-m", "recllm.cli", "serve", "--learn", str(self.learn), "--db",
                   f"sqlite:///{self.db}", "--port", str(self.port), "--quiet", "--threads", str(self.threads)]
        command += ["--trsr", str(self.trsr)] if self.trsr else []
        command += [] if self.encoder else ["--no-encoder"]
        env = {**os.environ, "RECLLM_TOKEN": self.token}
        began = time.perf_counter()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.proc.stderr.read().decode()[-1500:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - began
            except httpx.TransportError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"the server did not answer within {START_SECONDS} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)
            self.proc.stderr.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _latencies(url: str, users: list[str], clients: int, requests: int, params: dict[str, Any]) -> dict[str, float]:
    import httpx

    rng = np.random.default_rng(0)
    picks = [users[i] for i in rng.integers(len(users), size=requests)]
    per_client = [picks[c::clients] for c in range(clients)]

    def work(batch: list[str]) -> list[float]:
        out = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for user in batch:
                began = time.perf_counter()
                response = client.get("/recommend", params={"user": user, **params})
                response.raise_for_status()
                out.append(time.perf_counter() - began)
        return out

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        seconds = np.concatenate([np.asarray(r) for r in pool.map(work, per_client)])
    wall = time.perf_counter() - began
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99]) * 1000
    return {"clients": clients, "requests": len(seconds), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "rps": len(seconds) / wall}


def _new_item(server: Server) -> dict[str, float]:
    """POST a copy of the text of an item the first user has seen, and poll /similar of that item until it lists
    the new one (without catalogue texts: until /similar of the new item answers)."""
    import httpx

    new = "load-test-new-item"
    with httpx.Client(base_url=server.url, timeout=60) as client:
        history = client.get(f"/users/{_first_user(server)}/history").json()["items"]
        source = next((r for r in history if r["text"]), None)
        text = source["text"] if source else "a new item"
        began = time.perf_counter()
        client.post("/items", json={"id": new, "text": text}, headers=server.auth).raise_for_status()
        posted = time.perf_counter() - began
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if source is not None:
                listed = client.get("/similar", params={"item": source["item"], "k": 10}).json()["items"]
                if any(r["item"] == new for r in listed):
                    break
            elif client.get("/similar", params={"item": new, "k": 1}).status_code == 200:
                break
        else:
            return {"post_ms": posted * 1000, "recommendable_ms": float("nan")}
        return {"post_ms": posted * 1000, "recommendable_ms": (time.perf_counter() - began) * 1000}


def _first_user(server: Server) -> str:
    return json.loads((server.learn / "user_ids.json").read_text(encoding="utf-8"))[0]


def _fault(server: Server, user: str, item_ids: list[str], kill_after: int) -> dict[str, Any]:
    """Stream events, SIGKILL the server mid-stream, restart, retry the one in flight, count what is stored."""
    import httpx

    acked: list[str] = []
    enough = threading.Event()

    def killer() -> None:
        enough.wait(timeout=120)
        time.sleep(0.05)
        os.killpg(server.proc.pid, signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sent = 0

    def event(n: int) -> dict[str, Any]:
        return {"user": user, "item": item_ids[n % len(item_ids)], "timestamp": n, "idempotency_key": f"fault-{n}"}

    try:
        with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
            while sent < 1_000_000:
                client.post("/events", json=event(sent)).raise_for_status()
                acked.append(event(sent)["idempotency_key"])
                sent += 1
                if len(acked) >= kill_after:
                    enough.set()
    except httpx.TransportError:
        pass
    thread.join(timeout=60)
    server.kill()
    restart = server.start()
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        retried = client.post("/events", json=event(sent)).status_code
    with sqlite3.connect(server.db) as con:
        keys = [k for (k,) in con.execute("SELECT key FROM events ORDER BY seq")]
    stored = set(keys)
    return {"acknowledged": len(acked), "acknowledged_present_once": sum(keys.count(k) == 1 for k in acked),
            "missing": len([k for k in acked if k not in stored]), "duplicates": len(keys) - len(stored),
            "in_flight_retry_code": retried, "restart_s": restart}


def _bad_requests(server: Server) -> list[tuple[str, int, int]]:
    import httpx

    user = _first_user(server)
    cases = [
        ("wrong type (k=ten)", "get", "/recommend", {"params": {"user": user, "k": "ten"}}, 422),
        ("unknown user", "get", "/recommend", {"params": {"user": "no-such-user-xyz"}}, 404),
        ("unknown item", "get", "/similar", {"params": {"item": "no-such-item-xyz"}}, 404),
        ("oversized body (2 MiB)", "post", "/items", {"json": {"id": "x", "text": "a" * (2 << 20)},
                                                      "headers": server.auth}, 413),
        ("missing token", "post", "/events", {"json": {"user": user, "item": "x", "timestamp": 1,
                                                       "idempotency_key": "k"}}, 401),
        ("malformed JSON", "post", "/events", {"content": b"{", "headers": {**server.auth,
                                                                             "Content-Type": "application/json"}}, 400),
    ]
    out = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, method, path, kwargs, expected in cases:
            out.append((name, expected, getattr(client, method)(path, **kwargs).status_code))
    return out


def run(learn: Path, trsr: Path | None, clients: list[int], requests: int, threads: int = 1,
        encoder: bool = True) -> dict[str, Any]:
    """Every measurement of the module docstring -> a dict (see :func:`report`)."""
    users = json.loads((learn / "user_ids.json").read_text(encoding="utf-8"))
    item_ids = json.loads((learn / "item_ids.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"learn": str(learn), "trsr": str(trsr) if trsr else None, "latency": []}
    with tempfile.TemporaryDirectory(prefix="recllm-serve-load-") as tmp, \
            Server(learn, Path(tmp) / "load.db", trsr, threads, encoder) as server:
        result["start_s"] = server.start()
        modes = [("none", {"k": 10})] + ([("llm", {"k": 10, "rerank": "llm", "candidates": 50})] if trsr else [])
        for mode, params in modes:
            for c in clients:
                n = requests if mode == "none" else max(c, requests // 10)
                result["latency"].append({"rerank": mode, **_latencies(server.url, users, c, n, params)})
        result["new_item"] = _new_item(server) if encoder else None
        result["bad_requests"] = _bad_requests(server)
        result["fault"] = _fault(server, users[0], item_ids, kill_after=200)
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(result: dict[str, Any], command: str) -> str:
    """The markdown of docs/results/serve.md."""
    lines = ["# recllm serve: load and fault test", "",
             f"Command: `{command}`  ", f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  ",
             f"Machine: {_cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}  ", f"LEARN run: `{result['learn']}`; TRSR run: `{result['trsr']}`  ",
             f"Server start to first /health: {result['start_s']:.1f} s", "",
             "## /recommend latency", "", "| rerank | clients | requests | p50 ms | p95 ms | p99 ms | requests/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["latency"]:
        lines.append(f"| {r['rerank']} | {r['clients']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['rps']:.1f} |")
    item, fault = result["new_item"], result["fault"]
    lines += ["", "## New item", "", (f"POST /items answered in {item['post_ms']:.1f} ms; the item was listed by "
              f"/similar of its source {item['recommendable_ms']:.1f} ms after the POST began." if item else
              "Not measured (--no-encoder)."), "",
              "## SIGKILL while streaming events", "",
              f"{fault['acknowledged']} events acknowledged before the kill; after the restart "
              f"({fault['restart_s']:.1f} s to /health) {fault['acknowledged_present_once']} of them are stored "
              f"exactly once, {fault['missing']} missing, {fault['duplicates']} duplicate rows; the request in flight, "
              f"retried with its key, got {fault['in_flight_retry_code']}.", "",
              "## Bad requests", "", "| request | documented | got |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {expected} | {got} |" for name, expected, got in result["bad_requests"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recllm.serve.load", description=__doc__.splitlines()[0])
    parser.add_argument("--learn", required=True, type=Path)
    parser.add_argument("--trsr", default=None, type=Path)
    parser.add_argument("--clients", nargs="*", type=int, default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=200, help="requests per client count (rerank: a tenth)")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--no-encoder", action="store_true", help="serve without the content encoder (no new item)")
    parser.add_argument("--out", default=None, help="markdown report (default: print)")
    args = parser.parse_args(argv)
    result = run(args.learn, args.trsr, args.clients, args.requests, args.threads, not args.no_encoder)
    text = report(result, "python -m recllm.serve.load " + " ".join(argv if argv is not None else sys.argv[1:]))
    if args.out:
        from recllm.utils import write_text_atomic

        write_text_atomic(args.out, text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
