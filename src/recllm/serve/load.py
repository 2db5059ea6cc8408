"""Load and fault test of ``recllm serve`` on a loopback port, as a report: ``python -m recllm.serve.load``.

    python -m recllm.serve.load --learn runs/learn-ml100k [--trsr RUN] [--clients 1 4 16] [--requests 200]
                                [--rerank-requests 16] [--out docs/results/serve.md [--allow-dirty]]

Everything is bounded and stops by itself: the server is a child process on a free 127.0.0.1 port with a fresh
database in a temporary folder (the run's own ``serve.db`` is never touched), every phase has a fixed number of
requests, every wait has a deadline, and the server is killed at the end. Measured: latency percentiles and
requests/s of ``/recommend`` at each client count, with ``rerank=llm`` too when ``--trsr`` is given (over a few users
whose first summary is made, and timed, beforehand); POST-to-recommendable latency of new items; SIGKILL while a
client streams events, the restart time, and whether every acknowledged event is stored exactly once and nothing
unacknowledged is counted twice; the code of each bad request against the documented one. The machine's load
average is sampled throughout (the report says how busy the CPU was). After the server stops, the same models are
loaded in this process to count the FLOPs of one request of each kind (:func:`request_flops`) and to measure the
machine's matmul peak at the server's threads and precision, so each requests/s is also given as a share of that
peak. The report itself: :mod:`.load_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LoadSampler", "Server", "main", "request_flops", "run"]

START_SECONDS = 300
K = 10  # items per /recommend answer in every phase


class Server:
    """``recllm serve`` as a child process on a free loopback port (``start``/``kill``; a context manager)."""

    def __init__(self, learn: Path, db: Path, trsr: Path | None = None, threads: int = 1,
                 encoder: bool = True, max_reranks: int | None = None) -> None:
        self.learn, self.db, self.trsr, self.threads, self.encoder = learn, db, trsr, threads, encoder
        self.max_reranks = max_reranks  # None: the server's default
        self.token = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen | None = None
        self._log: Any = None  # the server's stderr (a temporary file)
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
        command += ["--max-reranks", str(self.max_reranks)] if self.max_reranks else []
        command += [] if self.encoder else ["--no-encoder"]
        env = {**os.environ, "RECLLM_TOKEN": self.token}
        began = time.perf_counter()
        # its log goes to a file, not a pipe: a pipe nobody reads during the run fills (64 KiB of logged errors)
        # and then blocks the server, and the load test would time a hung service
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
                                     start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self._log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - began
            except httpx.TransportError:
                time.sleep(0.2)
        tail = self._log_tail()
        self.kill()
        raise RuntimeError(f"the server did not answer within {START_SECONDS} s: {tail}")

    def _log_tail(self, chars: int = 1500) -> str:
        """The end of the server's log so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=60)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.kill()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _busy_ticks() -> int | None:
    """Clock ticks every CPU of the machine has spent busy (``/proc/stat``: user, nice, system, irq, softirq,
    steal), or None without /proc. In a container this is still the machine's: other containers count too."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return user + nice + system + irq + softirq + steal


def _cpu_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, its CPU ticks so far: user + system, and those of its reaped children) of every process
    this /proc shows."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # it ended meanwhile
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid ... utime stime cutime cstime
        out[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return out


def _ours(ticks: dict[int, tuple[int, int]], root: int) -> set[int]:
    """``root`` and every process descending from it (the load test, its server and anything they started)."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in ticks.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def _own_ticks(hz: float) -> float:
    """CPU ticks of this test so far: this process and the children it reaped (``os.times``), and its living
    descendants (the server, with what it reaped) from /proc."""
    times = os.times()
    own = (times.user + times.system + times.children_user + times.children_system) * hz
    ticks = _cpu_ticks()
    return own + sum(ticks[pid][1] for pid in _ours(ticks, os.getpid()) - {os.getpid()})


class LoadSampler:
    """What else used the CPU while the test ran, sampled every ``every`` seconds on a thread (a context manager):
    the cores' worth of CPU time the machine spent busy (``/proc/stat``) beyond what this test (the load test, its
    clients and its server) used, per interval (not measured without /proc), and the 1-minute load average, which
    lags by about a minute and counts the test itself."""

    def __init__(self, every: float = 2.0) -> None:
        self.every, self.samples = every, [os.getloadavg()[0]]
        self.others: list[float] = []  # cores' worth of CPU used by other processes, per interval
        self._hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
        self._last = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> tuple[int | None, float, float]:
        busy = _busy_ticks()
        return busy, (_own_ticks(self._hz) if busy is not None else 0.0), time.monotonic()

    def _sample(self) -> None:
        self.samples.append(os.getloadavg()[0])
        now = self._read()
        (busy0, own0, t0), (busy1, own1, t1) = self._last, now
        if busy0 is not None and busy1 is not None and t1 > t0:
            self.others.append(max(0.0, (busy1 - busy0) - (own1 - own0)) / self._hz / (t1 - t0))
        self._last = now

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()

    def summary(self) -> dict[str, float]:
        values = np.asarray(self.samples)
        out = {"samples": len(values), "min": float(values.min()), "median": float(np.median(values)),
               "max": float(values.max())}
        if self.others:
            others = np.asarray(self.others)
            out.update(others_median=float(np.median(others)), others_max=float(others.max()),
                       others_mean=float(others.mean()))
        return out


def _latencies(url: str, users: list[str], clients: int, requests: int, params: dict[str, Any]) -> dict[str, Any]:
    """``requests`` GET /recommend over ``users`` (drawn with a fixed seed) from ``clients`` concurrent clients."""
    import httpx

    rng = np.random.default_rng(0)
    picks = [users[i] for i in rng.integers(len(users), size=requests)]
    per_client = [picks[c::clients] for c in range(clients)]

    def work(batch: list[str]) -> list[float]:
        out = []
        with httpx.Client(base_url=url, timeout=600) as client:
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
    return {"clients": clients, "requests": len(seconds), "users": len(set(picks)), "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p99, "rps": len(seconds) / wall, "wall_s": wall}


def _warm_summaries(server: "Server", users: list[str], candidates: int) -> dict[str, Any]:
    """The first rerank=llm request of each user, which makes the user's summary (recurrent, over the complete
    blocks of the history), timed apart from the steady state."""
    import httpx

    seconds, versions = [], []
    with httpx.Client(base_url=server.url, timeout=900) as client:
        for user in users:
            began = time.perf_counter()
            client.get("/recommend", params={"user": user, "k": K, "rerank": "llm", "candidates": candidates}
                       ).raise_for_status()
            seconds.append(time.perf_counter() - began)
            versions.append(client.get(f"/users/{user}/summary").json()["version"])
    return {"users": len(users), "median_s": float(np.median(seconds)), "max_s": float(np.max(seconds)),
            "summarised": sum(v > 0 for v in versions)}


def _new_items(server: "Server", users: list[str]) -> dict[str, Any]:
    """For each user: POST a new item carrying the text of the user's top recommendation (so it belongs in the
    user's top 10), then poll /recommend until it is listed -> POST time and POST-to-recommendable time."""
    import httpx

    post_ms, ready_ms, ranks = [], [], []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for n, user in enumerate(users):
            top = client.get("/recommend", params={"user": user, "k": K}).raise_for_status().json()["items"][0]
            new = f"load-test-new-item-{n}"
            began = time.perf_counter()
            client.post("/items", json={"id": new, "text": top["text"] or top["item"]},
                        headers=server.auth).raise_for_status()
            post_ms.append((time.perf_counter() - began) * 1000)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listed = [r["item"] for r in client.get("/recommend", params={"user": user, "k": K}).json()["items"]]
                if new in listed:
                    ready_ms.append((time.perf_counter() - began) * 1000)
                    ranks.append(listed.index(new) + 1)
                    break
            else:
                ready_ms.append(float("nan"))
    return {"items": len(users), "post_ms": post_ms, "recommendable_ms": ready_ms, "ranks": ranks}


def _load_seconds(url: str) -> dict[str, float]:
    """The server's start-up times by part (``recllm_model_load_seconds{model=...}`` of /metrics)."""
    import re

    import httpx

    text = httpx.get(url + "/metrics", timeout=30).text
    return {name: float(value) for name, value in
            re.findall(r'^recllm_model_load_seconds\{model="([^"]+)"\} (\S+)$', text, flags=re.MULTILINE)}


def _first_user(server: Server) -> str:
    return json.loads((server.learn / "user_ids.json").read_text(encoding="utf-8"))[0]


def _stored_keys(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [k for (k,) in con.execute("SELECT key FROM events ORDER BY seq")]


def _fault(server: Server, user: str, item_ids: list[str], kill_after: int) -> dict[str, Any]:
    """Stream events, SIGKILL the server mid-stream, restart, retry the one in flight, count what is stored."""
    import httpx

    acked: list[str] = []
    enough = threading.Event()

    def killer() -> None:
        enough.wait(timeout=120)
        time.sleep(0.05)
        os.killpg(server.proc.pid, signal.SIGKILL)

    def event(n: int) -> dict[str, Any]:
        return {"user": user, "item": item_ids[n % len(item_ids)], "timestamp": n, "idempotency_key": f"fault-{n}"}

    with httpx.Client(base_url=server.url) as client:
        before = len(client.get(f"/users/{user}/history").json()["items"])
    earlier = set(_stored_keys(server.db))  # events of the phases before this one are not counted
    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sent = 0
    began = time.perf_counter()
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
    streamed = time.perf_counter() - began
    thread.join(timeout=60)
    server.kill()
    in_flight = event(sent)["idempotency_key"]
    keys = [k for k in _stored_keys(server.db) if k not in earlier]  # what survived the kill, before any retry
    restart = server.start()
    restart_parts = _load_seconds(server.url)
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        restored = len(client.get(f"/users/{user}/history").json()["items"]) - before
        retried = client.post("/events", json=event(sent)).status_code
        replayed = client.post("/events", json=event(0)).status_code
        after = len(client.get(f"/users/{user}/history").json()["items"]) - before
    final = [k for k in _stored_keys(server.db) if k not in earlier]
    sent_keys = set(acked) | {in_flight}
    return {"acknowledged": len(acked), "events_per_s": len(acked) / streamed,
            "acknowledged_present_once": sum(keys.count(k) == 1 for k in acked),
            "missing": len(set(acked) - set(keys)), "duplicates": len(keys) - len(set(keys)),
            "never_sent_stored": len(set(keys) - sent_keys),
            "in_flight_stored_before_retry": in_flight in keys, "in_flight_retry_code": retried,
            "replay_code": replayed, "history_after_restart": restored, "stored_after_restart": len(keys),
            "history_after_retry": after, "stored_after_retry": len(final),
            "in_flight_stored_once_after_retry": final.count(in_flight) == 1, "restart_s": restart,
            "restart_parts": restart_parts}


def _bad_requests(server: Server, item_ids: list[str]) -> list[tuple[str, int, int, bool]]:
    """Each bad request of docs/serve.md's error list -> (what, documented code, code received, whether the body
    is ``{"error": "<one line>"}``)."""
    import httpx

    user, item, auth = _first_user(server), item_ids[0], server.auth
    event = {"user": user, "item": item, "timestamp": 1, "idempotency_key": "bad-request-key"}
    cases = [
        ("malformed JSON body", "post", "/events", {"content": b"{", "headers": {**auth,
                                                   "Content-Type": "application/json"}}, 400),
        ("missing token", "post", "/events", {"json": event}, 401),
        ("wrong token", "post", "/events", {"json": event, "headers": {"Authorization": "Bearer wrong"}}, 401),
        ("unknown user", "get", "/recommend", {"params": {"user": "no-such-user-xyz"}}, 404),
        ("unknown item (/similar)", "get", "/similar", {"params": {"item": "no-such-item-xyz"}}, 404),
        ("unknown item in an event", "post", "/events", {"json": {**event, "item": "no-such-item-xyz",
                                                                  "idempotency_key": "bad-unknown"}, "headers": auth}, 404),
        ("unknown route", "get", "/no-such-route", {}, 404),
        ("catalogue id posted as a new item", "post", "/items", {"json": {"id": item, "text": "x"},
                                                                  "headers": auth}, 409),
        ("idempotency key reused with another payload", "post", "/events",
         {"json": {**event, "item": item_ids[1]}, "headers": auth}, 409),
        ("oversized body (2 MiB)", "post", "/items", {"json": {"id": "x", "text": "a" * (2 << 20)},
                                                      "headers": auth}, 413),
        ("wrong type in the query (k=ten)", "get", "/recommend", {"params": {"user": user, "k": "ten"}}, 422),
        ("wrong type in the body (timestamp \"yesterday\")", "post", "/events",
         {"json": {**event, "timestamp": "yesterday", "idempotency_key": "bad-type"}, "headers": auth}, 422),
        ("unknown field in the body", "post", "/events",
         {"json": {**event, "idempotency_key": "bad-field", "priority": 1}, "headers": auth}, 422),
    ]
    out = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.post("/events", json=event, headers=auth).raise_for_status()  # the key the conflict case reuses
        for name, method, path, kwargs, expected in cases:
            response = getattr(client, method)(path, **kwargs)
            try:
                message = response.json().get("error")
            except ValueError:
                message = None
            one_line = isinstance(message, str) and bool(message) and "\n" not in message
            out.append((name, expected, response.status_code, one_line))
    return out


def _search_flops(index: Any, n_items: int) -> float:
    """Multiply-adds of one exhaustive inner-product search (exact or faiss flat), counted as 2 FLOPs each; 0 for an
    approximate index, whose work depends on the graph."""
    kind = getattr(index, "kind", "")
    dim = index.vectors.shape[1] if kind == "exact" else index.index.d if kind == "flat" else 0
    return 2.0 * n_items * dim


def request_flops(services: dict[str, Any], users: list[str], candidates: int) -> dict[str, dict[str, Any]]:
    """FLOPs of one ``/recommend?k=K`` of each kind, counted on the service's own objects (``app.state.services``)
    the way the route calls them, mean over ``users``: ``"none"``, retrieval (the user tower, counted by torch, plus
    an exhaustive index search), and with a reranker ``"llm"``, retrieval of ``max(K, candidates)`` items then the
    ranker's scoring of them (each user's summary is made first, outside the count, as in the steady-state rows).
    Each kind also names the precision its arithmetic runs in (the retrieval towers' and the ranker's scoring
    copy's)."""
    from recllm.llm.hardware import count_flops

    state, reranker = services["state"], services.get("reranker")
    search = _search_flops(state.index, state.n_items)
    retrieval = [count_flops(lambda: state.recommend(user, K))[1] + search for user in users]
    towers = str(next(state.net.parameters()).dtype).removeprefix("torch.")
    out = {"none": {"flops": float(np.mean(retrieval)), "dtype": towers, "search_counted": search > 0}}
    if reranker is not None:
        counts = []
        for user in users:
            if reranker.config.use_summary:
                reranker.summaries.current(user)
            retrieved, flops = count_flops(lambda: state.recommend(user, max(K, candidates)))
            scored = count_flops(lambda: reranker.rerank(user, state.history(user), retrieved))[1]
            counts.append(flops + search + scored)
        scoring_dtype = reranker.ranker.lm_.dtype.split("+")[0]  # e.g. "bfloat16+float32-answers"
        out["llm"] = {"flops": float(np.mean(counts)), "dtype": scoring_dtype}
    return out


def _flops_and_peak(learn: Path, trsr: Path | None, users: list[str], candidates: int,
                    threads: int) -> dict[str, dict[str, Any]]:
    """:func:`request_flops` on the run folders loaded in this process (a fresh database, no content encoder: no
    item is added), each kind with the machine's matmul peak in its precision at the server's ``threads`` (torch's
    threads are restored after)."""
    import torch

    from recllm.llm.hardware import measure_matmul_flops
    from recllm.serve.cli import load_service

    with tempfile.TemporaryDirectory(prefix="recllm-serve-flops-") as tmp:
        app = load_service(learn, trsr, db=f"sqlite:///{Path(tmp) / 'flops.db'}", encoder=False)
        services = app.state.services
        try:
            kinds = request_flops(services, users, candidates)
        finally:
            if services.get("summaries") is not None:
                services["summaries"].stop()
            services["store"].close()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        peaks = {dtype: measure_matmul_flops(dtype, device="cpu") for dtype in {k["dtype"] for k in kinds.values()}}
    finally:
        torch.set_num_threads(before)
    return {name: {**kind, "threads": threads, "peak": peaks[kind["dtype"]]} for name, kind in kinds.items()}


def run(learn: Path, trsr: Path | None, clients: list[int], requests: int, threads: int = 1,
        encoder: bool = True, rerank_requests: int = 16, rerank_users: int = 8, candidates: int = 50,
        new_items: int = 5, kill_after: int = 200) -> dict[str, Any]:
    """Every measurement of the module docstring -> a dict (see :func:`recllm.serve.load_report.report`)."""
    import httpx

    users = json.loads((learn / "user_ids.json").read_text(encoding="utf-8"))
    item_ids = json.loads((learn / "item_ids.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"learn": str(learn), "trsr": str(trsr) if trsr else None, "latency": [],
                              "threads": threads, "candidates": candidates}
    in_flight = max(clients)  # --max-reranks: every rerank=llm client waits its turn (latency), none gets a 503
    began = time.perf_counter()
    warm = users[:2]  # whose FLOPs per request are counted (the rerank users when there is a ranker)
    with LoadSampler() as load:
        with tempfile.TemporaryDirectory(prefix="recllm-serve-load-") as tmp, \
                Server(learn, Path(tmp) / "load.db", trsr, threads, encoder, in_flight) as server:
            result["start_s"] = server.start()
            result["health"] = httpx.get(server.url + "/health", timeout=30).json()
            result["start_parts"] = _load_seconds(server.url)
            for c in clients:
                result["latency"].append({"rerank": "none",
                                          **_latencies(server.url, users, c, requests, {"k": K})})
            if trsr is not None:
                warm = [users[i] for i in np.random.default_rng(1).choice(len(users), rerank_users, replace=False)]
                result["summaries"] = _warm_summaries(server, warm, candidates)
                params = {"k": K, "rerank": "llm", "candidates": candidates}
                for c in clients:
                    result["latency"].append({"rerank": "llm", **_latencies(server.url, warm, c,
                                                                             max(c, rerank_requests), params)})
            result["new_item"] = _new_items(server, users[:new_items]) if encoder else None
            result["bad_requests"] = _bad_requests(server, item_ids)
            result["fault"] = _fault(server, users[0], item_ids, kill_after=kill_after)
        try:  # after the server stopped, still sampled: the peak is measured on the CPU the header describes
            result["flops"] = _flops_and_peak(learn, trsr, warm, candidates, threads)
        except Exception as exc:  # noqa: BLE001 - the measured run is kept; the report says what was not counted
            result["flops_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    result["load"] = load.summary()
    result["wall_s"] = time.perf_counter() - began
    return result


def main(argv: list[str] | None = None) -> int:
    from recllm.cli_args import positive_int

    parser = argparse.ArgumentParser(prog="python -m recllm.serve.load", description=__doc__.splitlines()[0])
    parser.add_argument("--learn", required=True, type=Path, help="a `recllm learn train --out` folder")
    parser.add_argument("--trsr", default=None, type=Path, help="a `recllm trsr train --out` folder: rerank=llm too")
    parser.add_argument("--clients", nargs="+", type=positive_int, default=[1, 4, 16])
    parser.add_argument("--requests", type=positive_int, default=200, help="/recommend requests per client count")
    parser.add_argument("--rerank-requests", type=positive_int, default=16,
                        help="rerank=llm requests per client count (at least one per client)")
    parser.add_argument("--rerank-users", type=positive_int, default=8, help="users of the rerank=llm requests")
    parser.add_argument("--candidates", type=positive_int, default=50, help="retrieved candidates the LLM reranks")
    parser.add_argument("--threads", type=positive_int, default=1, help="the server's torch threads")
    parser.add_argument("--no-encoder", action="store_true", help="serve without the content encoder (no new item)")
    parser.add_argument("--out", default=None, help="markdown report (default: print); an existing file that recllm "
                        "did not generate needs --overwrite")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--context", default="", help="a sentence for the header about what else ran on the "
                        "machine (e.g. shared cores)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write the report from a git tree with uncommitted changes (its header says so)")
    args = parser.parse_args(argv)
    from recllm.bench.reporting import report_target, source_state
    from recllm.errors import UserInputError
    from recllm.serve.load_report import report

    try:
        for flag, folder, needed, command in (("--learn", args.learn, "user_ids.json", "learn train"),
                                              ("--trsr", args.trsr, "trsr_config.json", "trsr train")):
            if folder is not None and not (folder / needed).is_file():
                raise UserInputError(f"{folder} has no {needed}: not a `recllm {command}` folder", flag,
                                     f"pass a folder written by `recllm {command} --out`")
        target = report_target(args.out, "serve.md", overwrite=args.overwrite, allow_dirty=args.allow_dirty) \
            if args.out else None
        source = target.commit if target else source_state(allow_dirty=True)
    except UserInputError as exc:
        parser.exit(2, f"python -m recllm.serve.load: error: {exc}\n")
    result = run(args.learn, args.trsr, args.clients, args.requests, args.threads, not args.no_encoder,
                 args.rerank_requests, args.rerank_users, args.candidates)
    result["context"] = args.context
    command = "python -m recllm.serve.load " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = report(result, command, source)
    if target is not None:
        from recllm.eval.report import write_generated

        try:  # checked again now: a file recllm did not make may have appeared during the run
            write_generated(target.path, text, overwrite=target.overwrite)
        except UserInputError as exc:  # the run's report on stdout, so the minutes it took are not lost
            print(text)
            parser.exit(2, f"python -m recllm.serve.load: error: {exc} (the report is printed above)\n")
        print(f"wrote {target.path}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
