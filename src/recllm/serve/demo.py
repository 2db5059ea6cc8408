"""The serving section of ``recllm demo``: LEARN behind ``recllm serve`` on a free loopback port, briefly.

The LEARN model is the LEARN section's (:func:`recllm.learn.demo.learn_artifact`: saved in the recllm cache by that
section, trained the same way only when this section runs alone): no second training. It is trained on the
cold-start split, not leave-one-out: cold start is what the service shows here (a film added by its text alone is
recommendable at once), and it is the protocol under which the LEARN section measured that model. The artifact
holds every user's full history, so the service recommends from all of it. ``recllm serve`` is started on it as a
child process (fresh database in a temporary folder, a random token), and a few requests show what the service is
for: a user's recommendations, a film added by its text alone (no retraining) and where it lands for that user, an
event that updates the history. The server is stopped at the end, whatever happens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

DEMO_USER = "196"


def _titles(rows: list[dict[str, Any]], n: int = 5) -> str:
    return "; ".join(f"{r['text'].split(';')[0].removeprefix('title: ')}" for r in rows[:n])


def demo_section(seed: int = 0, show_progress: bool = True, encoder: str = "smollm2") -> None:
    """Start the service on the LEARN section's model (``encoder``: its film-text encoder), make the requests,
    print what they return, stop it."""
    import httpx

    from recllm.learn.demo import ENCODER_NAMES, learn_artifact
    from recllm.serve.load import Server

    folder, how = learn_artifact(seed, show_progress, encoder=encoder)
    print(f"LEARN artifact (MovieLens-100K cold-start split, {ENCODER_NAMES[encoder]} item text): {how}: {folder}")
    if show_progress:
        print("starting recllm serve (loads the model and its text encoder) ...", flush=True)
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
