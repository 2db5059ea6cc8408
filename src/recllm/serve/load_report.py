"""The markdown of docs/results/serve.md from a :func:`recllm.serve.load.run` result."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recllm.eval.report import fmt_of_peak

__all__ = ["report"]


def _ms(values: list[float]) -> str:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "never (60 s deadline)"
    text = f"median {np.median(finite):.0f} ms, max {max(finite):.0f} ms"
    return text + (f" ({len(values) - len(finite)} not listed within 60 s)" if len(finite) < len(values) else "")


def _parts(seconds: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()) or "not reported"


def _total_and_parts(seconds: dict[str, float]) -> str:
    """A table cell: the total first (so a rerun's report compares it as a figure), then the parts."""
    return f"{sum(seconds.values()):.1f} s ({_parts(seconds)})" if seconds else "not reported"


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
        _load_line(load, m["cores"]),
        f"- server: `recllm serve` as a child process on 127.0.0.1, {result['threads']} torch thread(s), one uvicorn "
        "worker, SQLite (WAL, synchronous=FULL) in a fresh temporary folder; clients: httpx threads in this process",
        f"- LEARN run: `{result['learn']}` ({health['catalogue_items']} catalogue items, {health['users']} users); "
        + (f"TRSR run: `{result['trsr']}`" if result["trsr"] else "no TRSR run (no rerank=llm rows)"),
        f"- server start to the first /health answer: {result['start_s']:.1f} s; of it, loading: "
        f"{_parts(result.get('start_parts', {}))} (the rest: starting Python and importing torch, transformers, "
        "FastAPI)",
    ] + ([f"- context: {result['context']}"] if result.get("context") else [])


OTHERS_BUSY = 0.25  # cores' worth of CPU that other processes may take before the report says they competed


def _load_line(load: dict[str, float], cores: str) -> str:
    """The header's line on what else used the CPU: other processes' CPU use where it was measured (a test from
    before that, or without /proc: the load average alone), and the verdict."""
    if "others_median" not in load:
        return (f"- **load average (1 min) during the run: median {load['median']:.1f}, min {load['min']:.1f}, max "
                f"{load['max']:.1f}** ({load['samples']} samples) on {cores} cores. " + _busy(load, cores))
    average = (f"1-minute load average median {load['median']:.1f}, min {load['min']:.1f}, max {load['max']:.1f} "
               f"({load['samples']} samples)")
    verdict = ("Other jobs competed with the service and its clients for the CPU, so latencies here are upper "
               "bounds and requests/s lower bounds of what the service does on an otherwise idle machine."
               if load["others_median"] > OTHERS_BUSY else "The service and its clients had the CPU to themselves.")
    return (f"- **CPU used by other processes during the run: median {load['others_median']:.2f}, max "
            f"{load['others_max']:.2f} of {cores} cores** (the machine's busy CPU time in /proc/stat every 2 s, less "
            f"this test's own: its clients and server); {average}, which lags by about a minute and counts the test itself. {verdict}")


def _busy(load: dict[str, float], cores: str) -> str:
    """The verdict from the load average alone (no measure of other processes' CPU)."""
    try:
        n = int(cores)
    except ValueError:
        return ""
    if load["median"] <= n:
        return "The CPU was not oversubscribed during the run."
    return ("More runnable processes than cores most of the time: other jobs competed with the service and its "
            "clients for the CPU, so latencies here are upper bounds and requests/s lower bounds of what the service "
            "does on an otherwise idle machine.")


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
    flops = result.get("flops") or {}
    if flops:
        lines += [_flops_note(flops), ""]
    elif result.get("flops_error"):
        lines += [f"FLOPs per request were not counted (loading the runs in the test's process failed: "
                  f"{result['flops_error']}), so the last two columns are n/a.", ""]
    lines += ["| rerank | clients | requests | users | p50 ms | p95 ms | p99 ms | requests/s | GFLOP / request | "
              "of peak |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["latency"]:
        kind = flops.get(r["rerank"], {})
        work = kind.get("flops", float("nan"))
        lines.append(f"| {r['rerank']} | {r['clients']} | {r['requests']} | {r['users']} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.2f} | {_gflop(work)} | "
                     f"{fmt_of_peak(r['rps'], work, kind.get('peak')) or 'n/a'} |")
    return lines


def _gflop(flops: float) -> str:
    return "n/a" if math.isnan(flops) else f"{flops / 1e9:.3g}"


def _flops_note(flops: dict[str, dict[str, Any]]) -> str:
    """How the FLOPs per request and the peaks of the last two columns were found."""
    none = flops["none"]
    search = ("plus an exhaustive search of the item vectors (2 FLOPs per item and dimension)"
              if none.get("search_counted") else "(the approximate index search not counted)")
    peaks = "; ".join(f"rerank={name}: {kind['dtype']}, {kind['peak'] / 1e9:.1f} GFLOP/s" for name, kind in
                      flops.items())
    return ("FLOPs per request were counted after the run, in this process, on the same run folders loaded the "
            "way the server loads them (torch's FLOP counter: matrix products and attention; element-wise work not "
            f"counted): retrieval is the user tower {search}; a rerank=llm request adds the ranker's scoring of the "
            "candidates, the user's summary made beforehand. \"of peak\" is requests/s x FLOPs per request over "
            f"this machine's measured matmul peak in the precision of the request's arithmetic, at the server's "
            f"{none['threads']} thread(s) ({peaks}): the share of the CPU's arithmetic the service turns into "
            "answers; the rest goes to HTTP, JSON, SQLite, Python and waiting.")


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
            "synchronous commit: a rate of durable writes, bound by the disk's flushes, not by arithmetic, so no share "
            "of the matmul peak applies) the server's process group gets SIGKILL mid-stream; the server is restarted on the "
            "same database and the client retries the request that was in flight with its key.", "",
            "| check | result |", "| --- | ---: |",
            f"| events acknowledged before the kill | {f['acknowledged']} |",
            f"| of them stored exactly once after the kill | {f['acknowledged_present_once']} |",
            f"| acknowledged events missing | {f['missing']} |",
            f"| duplicate rows | {f['duplicates']} |",
            f"| stored events that were never sent | {f['never_sent_stored']} |",
            "| the in-flight event (never acknowledged) was stored: its commit landed before the kill, its answer "
            f"did not | {'yes' if f['in_flight_stored_before_retry'] else 'no'} |",
            "| events in the user's history after the restart (stored rows) | "
            f"{f['history_after_restart']} ({f['stored_after_restart']}) |",
            f"| retry of the in-flight event with its key | {f['in_flight_retry_code']} |",
            f"| in-flight event stored exactly once after the retry | {once} |",
            f"| history after the retry, events counted (stored) | {f['history_after_retry']} ({f['stored_after_retry']}) |",
            f"| an acknowledged event re-sent with its key | {f['replay_code']} (replayed, not stored again) |",
            f"| restart: process start to /health | {f['restart_s']:.1f} s |",
            f"| of it, loading (and replaying the store: restore) | {_total_and_parts(f.get('restart_parts', {}))} |",
            "",
            _fault_verdict(f)]


def _fault_verdict(f: dict[str, Any]) -> str:
    held = (f["missing"] == 0 and f["duplicates"] == 0 and f["never_sent_stored"] == 0
            and f["acknowledged_present_once"] == f["acknowledged"] and f["in_flight_stored_once_after_retry"]
            and f["history_after_retry"] == f["stored_after_retry"] == f["acknowledged"] + 1)
    if not held:
        return "**Result: the durability contract did NOT hold in this run** (see the rows above)."
    return ("Result: every acknowledged event is stored exactly once and counted once in the history; the only "
            "unacknowledged event that can be stored is the request in flight, and its retry with the same key is "
            "answered from the store (200, `Idempotent-Replayed`) or stored then (201), never twice.")


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
