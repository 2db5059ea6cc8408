"""The markdown of docs/results/serve.md from a :func:`recllm.serve.load.run` result."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

__all__ = ["report"]


def _ms(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "never (60 s deadline)"
    text = f"median {np.median(finite):.0f} ms, max {max(finite):.0f} ms"
    return text + (f" ({len(values) - len(finite)} not listed within 60 s)" if len(finite) < len(values) else "")


def _header(result: dict[str, Any], command: str, source: str) -> list[str]:
    from recllm.eval.report import GENERATED_NOTE, machine_info

    m, load, health = machine_info(), result["load"], result["health"]
    return [
        "# recllm serve: load and fault test", "", f"<!-- {GENERATED_NOTE} -->", f"_{GENERATED_NOTE}_", "",
        f"- command: `{command}`",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time of the whole run {result['wall_s']:.0f} s",
        f"- source: {source}",
        f"- machine: {m['cpu']}, {m['cores']} cores, AMX: {m['amx']}; {m['os']}; python {m['python']}, "
        f"torch {m['torch']}, transformers {m['transformers']}, recllm {m['recllm']}",
        f"- **load average (1 min) during the run: median {load['median']:.1f}, min {load['min']:.1f}, max "
        f"{load['max']:.1f}** ({load['samples']} samples). The {m['cores']} cores were shared with other engineers' "
        "jobs (tests, training, benchmarks) running at the same time, so these are the figures of a busy machine, "
        "not an idle one: latencies are upper bounds and requests/s lower bounds of what the service does alone.",
        f"- server: `recllm serve` as a child process on 127.0.0.1, {result['threads']} torch thread(s), one uvicorn "
        "worker, SQLite (WAL, synchronous=FULL) in a fresh temporary folder; clients: httpx threads in this process",
        f"- LEARN run: `{result['learn']}` ({health['catalogue_items']} catalogue items, {health['users']} users); "
        f"TRSR run: `{result['trsr']}`" + ("" if result["trsr"] else " (no rerank=llm rows)"),
        f"- server start to the first /health answer: {result['start_s']:.1f} s (models loaded, state restored)",
    ]


def _latency(result: dict[str, Any]) -> list[str]:
    lines = ["", "## /recommend latency", "",
             "k=10; each client is a thread with its own connection sending requests back to back; users drawn "
             "with a fixed seed. With `rerank=llm` the top "
             f"{result['candidates']} retrieved candidates are scored by the LoRA ranker (shared-prefix scoring, "
             "guarded prompt) and reordered by P(Yes); the ranker runs one request at a time, so more clients queue.",
             ""]
    if result.get("summaries"):
        s = result["summaries"]
        lines += [f"The rerank rows use {s['users']} users whose summaries were made first: their first rerank=llm "
                  f"request, which runs the recurrent summariser over the complete blocks of the history "
                  f"({s['summarised']} of {s['users']} had at least one), took median {s['median_s']:.1f} s, max "
                  f"{s['max_s']:.1f} s; the rows below are the steady state, with the summary stored.", ""]
    lines += ["| rerank | clients | requests | users | p50 ms | p95 ms | p99 ms | requests/s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["latency"]:
        lines.append(f"| {r['rerank']} | {r['clients']} | {r['requests']} | {r['users']} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.2f} |")
    return lines


def _new_item(item: dict[str, Any] | None) -> list[str]:
    lines = ["", "## A new item, recommendable at once", ""]
    if item is None:
        return lines + ["Not measured (--no-encoder)."]
    ranks = ", ".join(map(str, item["ranks"])) or "-"
    return lines + [
        f"{item['items']} users: for each, a new item carrying the text of the user's top recommendation was POSTed "
        "(embedded by the frozen content encoder, whitened, passed through the item tower and indexed; no "
        "retraining), then /recommend?k=10 was polled until it listed the item.", "",
        f"- POST /items answered (item indexed): {_ms(item['post_ms'])}",
        f"- POST began to the item listed by the user's /recommend: {_ms(item['recommendable_ms'])}; its ranks: "
        f"{ranks}"]


def _fault(f: dict[str, Any]) -> list[str]:
    once = "yes" if f["in_flight_stored_once_after_retry"] else "NO"
    return ["", "## SIGKILL while a client streams events", "",
            "One client POSTs events (idempotency keys `fault-0`, `fault-1`, ...) back to back; after "
            f"{f['acknowledged']} acknowledgements ({f['events_per_s']:.0f} acknowledged events/s, each a full "
            "synchronous commit) the server's process group gets SIGKILL mid-stream; the server is restarted on the "
            "same database and the client retries the request that was in flight with its key.", "",
            "| check | result |", "| --- | ---: |",
            f"| events acknowledged before the kill | {f['acknowledged']} |",
            f"| of them stored exactly once after the kill | {f['acknowledged_present_once']} |",
            f"| acknowledged events missing | {f['missing']} |",
            f"| duplicate rows | {f['duplicates']} |",
            f"| stored events that were never sent | {f['never_sent_stored']} |",
            f"| the unacknowledged in-flight event was already stored | {'yes' if f['in_flight_stored_before_retry'] else 'no'} |",
            f"| user's history after the restart, events counted | {f['history_after_restart']} (stored: {f['stored_after_restart']}) |",
            f"| retry of the in-flight event with its key | {f['in_flight_retry_code']} |",
            f"| in-flight event stored exactly once after the retry | {once} |",
            f"| history after the retry, events counted (stored) | {f['history_after_retry']} ({f['stored_after_retry']}) |",
            f"| an acknowledged event re-sent with its key | {f['replay_code']} (replayed, not stored again) |",
            f"| restart: process start to /health | {f['restart_s']:.1f} s |"]


def report(result: dict[str, Any], command: str, source: str = "unknown") -> str:
    """The markdown of docs/results/serve.md."""
    lines = _header(result, command, source) + _latency(result) + _new_item(result["new_item"]) + \
        _fault(result["fault"])
    lines += ["", "## Bad requests", "", "Each answered with a JSON body `{\"error\": \"<one line>\"}`; the code "
              "documented in docs/serve.md against the one received.", "",
              "| request | documented | got | one-line JSON error |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {name} | {expected} | {got}{'' if got == expected else ' (MISMATCH)'} | {'yes' if one else 'NO'} |"
              for name, expected, got, one in result["bad_requests"]]
    return "\n".join(lines) + "\n"
