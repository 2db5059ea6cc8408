"""The serving section of ``recllm demo``: LEARN behind ``recllm serve`` on a free loopback port, briefly.

A LEARN model of MovieLens-100K (leave-one-out, a few epochs, SmolLM2 content embeddings cached on disk) is saved
as an artifact in the recllm cache, ``recllm serve`` is started on it as a child process (fresh database in a
temporary folder, a random token), and a few requests show what the service is for: a user's recommendations, a
film added by its text alone (no retraining) and where it lands for that user, an event that updates the
history. The server is stopped at the end, whatever happens.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEMO_USER = "196"
EPOCHS = 3


def _artifact(seed: int, show_progress: bool) -> tuple[Path, str]:
    """The demo's LEARN artifact in the recllm cache (trained once per seed and content; reused after)."""
    from recllm.data import leave_one_out, load
    from recllm.learn import LEARN, save
    from recllm.learn.defaults import SEQ_SETTINGS
    from recllm.learn.encoder import content_for
    from recllm.utils import cache_dir

    dataset = load("ml-100k", show_progress=show_progress)
    content, _ = content_for(dataset, show_progress)
    digest = hashlib.sha256(np.ascontiguousarray(content, dtype=np.float32).tobytes()).hexdigest()[:16]
    folder = cache_dir("demo") / f"serve-learn-ml100k-s{seed}-e{EPOCHS}-{digest}"
    if (folder / "config.json").is_file():
        return folder, "reused from the cache"
    start = time.perf_counter()
    settings = dict(SEQ_SETTINGS, batch_size=128, patience=EPOCHS, max_epochs=EPOCHS, seed=seed,
                    show_progress=show_progress)
    model = LEARN(content_embeddings=content, item_input="content", item_tower="shared", **{**settings, "lr": 3e-3})
    model.fit(leave_one_out(dataset))
    save(model, folder, dataset)
    return folder, f"trained in {time.perf_counter() - start:.0f} s ({EPOCHS} epochs)"


def _titles(rows: list[dict[str, Any]], n: int = 5) -> str:
    return "; ".join(f"{r['text'].split(';')[0].removeprefix('title: ')}" for r in rows[:n])


def demo_section(seed: int = 0, show_progress: bool = True) -> None:
    """Start the service, make the requests, print what they return, stop it."""
    import httpx

    from recllm.serve.load import Server

    folder, how = _artifact(seed, show_progress)
    print(f"LEARN artifact (MovieLens-100K, leave-one-out): {how}: {folder}")
    with tempfile.TemporaryDirectory(prefix="recllm-serve-demo-") as tmp, \
            Server(folder, Path(tmp) / "serve.db", threads=1) as server:
        ready = server.start()
        print(f"recllm serve on {server.url} ready in {ready:.1f} s (page: {server.url}/, OpenAPI: {server.url}/docs)")
        with httpx.Client(base_url=server.url, timeout=120) as client:
            before = client.get("/recommend", params={"user": DEMO_USER, "k": 10}).raise_for_status().json()["items"]
            print(f"GET /recommend?user={DEMO_USER}&k=10 -> {_titles(before)}; ...")
            source = before[0]
            text = f"{source['text']} (restored director's cut)"
            began = time.perf_counter()
            posted = client.post("/items", json={"id": "demo-new-film", "text": text}, headers=server.auth)
            posted.raise_for_status()
            after = client.get("/recommend", params={"user": DEMO_USER, "k": 10}).raise_for_status().json()["items"]
            seconds = time.perf_counter() - began
            ranks = [r["item"] for r in after]
            where = (f"rank {ranks.index('demo-new-film') + 1} of 10" if "demo-new-film" in ranks
                     else "not in the top 10")
            print(f"POST /items 'demo-new-film' (the text of {source['item']} + \"restored director's cut\", never "
                  f"trained on) -> {posted.status_code}; {where} for user {DEMO_USER}, {seconds * 1000:.0f} ms "
                  "after the POST began, no retraining")
            event = {"user": DEMO_USER, "item": "demo-new-film", "timestamp": int(time.time()),
                     "idempotency_key": "demo-event-1"}
            acked = client.post("/events", json=event, headers=server.auth)
            again = client.post("/events", json=event, headers=server.auth)
            history = client.get(f"/users/{DEMO_USER}/history").raise_for_status().json()["items"]
            print(f"POST /events (user {DEMO_USER} watched demo-new-film) -> {acked.status_code}, the same key again "
                  f"-> {again.status_code} (stored once); history now {len(history)} items, last "
                  f"{history[-1]['item']}")
            unauthorised = client.post("/items", json={"id": "x", "text": "y"}).status_code
            print(f"POST /items without the token -> {unauthorised}; GET /metrics -> "
                  f"{client.get('/metrics').status_code}")
    print("server stopped")
