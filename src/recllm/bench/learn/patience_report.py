"""The report of ``recllm bench learn-patience`` (:mod:`recllm.bench.learn_patience`): early stopping replayed
on stored validation curves, the patience chosen on them, and whether the epoch cap binds.

Presentation only (:data:`recllm.bench.runs.PRESENTATION_MODULES`): it reads stored curves and computes nothing a
stored run holds, so editing it never makes the stored fits stale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PATIENCES = (3, 5, 10, 15, 20, 30)
# A patience is good enough when what it keeps is within 1% (relative) of the best validation NDCG@10 of the
# benchmark's epoch cap: seed-to-seed spread of that figure on ML-100K is several percent, so finer is noise.
TOLERANCE = 0.01


def stop_under(curve: list[float], patience: int, cap: int) -> tuple[int, float, int]:
    """(kept epoch, its validation figure, epochs trained) of early stopping with ``patience`` and an epoch cap
    ``cap`` on a validation ``curve`` (one figure per epoch from epoch 1): a strictly better figure resets the count,
    training stops once the count reaches ``patience`` or at the cap, and the best epoch is kept."""
    if patience < 1 or cap < 1:
        raise ValueError(f"patience and cap must be >= 1 (got {patience}, {cap})")
    if not curve:
        raise ValueError("an empty validation curve")
    best, kept, since = -np.inf, 0, 0
    trained = min(cap, len(curve))
    for epoch, score in enumerate(curve[:trained], 1):
        if score > best:
            best, kept, since = score, epoch, 0
        else:
            since += 1
        if since >= patience:
            trained = epoch
            break
    return kept, float(best), trained


def patience_rows(curves: dict[str, list[list[float]]], cap: int, patiences: tuple[int, ...] = PATIENCES
                  ) -> list[dict[str, Any]]:
    """Per model and patience: seed means of the kept validation NDCG@10, its share of the best within ``cap``,
    the kept epoch and the epochs trained (``curves``: model -> one curve per seed)."""
    rows = []
    for model, seeds in curves.items():
        best = float(np.mean([max(c[:cap]) for c in seeds]))
        for patience in (*patiences, cap):
            stops = [stop_under(c, patience, cap) for c in seeds]
            kept = float(np.mean([s[1] for s in stops]))
            rows.append({"model": model, "patience": patience if patience != cap else f"{cap} (never early)",
                         "valid ndcg@10 kept": kept, "share of best": kept / best if best > 0 else float("nan"),
                         "kept epoch": f"{np.mean([s[0] for s in stops]):.1f}",
                         "epochs trained": f"{np.mean([s[2] for s in stops]):.1f}"})
    return rows


def choose_patience(curves: dict[str, list[list[float]]], cap: int, patiences: tuple[int, ...] = PATIENCES,
                    tolerance: float = TOLERANCE) -> int | None:
    """The smallest of ``patiences`` whose kept validation NDCG@10 (seed mean) is at least (1 - ``tolerance``)
    times the best within ``cap`` for every model; None when none is."""
    for patience in sorted(patiences):
        if all(np.mean([stop_under(c, patience, cap)[1] for c in seeds])
               >= (1 - tolerance) * np.mean([max(c[:cap]) for c in seeds]) for seeds in curves.values()):
            return patience
    return None


def cap_verdict(curves: dict[str, list[list[float]]], bench_cap: int, tolerance: float = TOLERANCE) -> str:
    """Whether a longer fit than ``bench_cap`` epochs finds a validation NDCG@10 more than ``tolerance`` above the
    best within it (seed means), per model."""
    longest = min(len(c) for seeds in curves.values() for c in seeds)
    if longest <= bench_cap:
        return f"(The curves end at the benchmark's {bench_cap}-epoch cap: whether it binds is not measured.)"
    gains = {name: np.mean([max(c) for c in seeds]) / np.mean([max(c[:bench_cap]) for c in seeds]) - 1
             for name, seeds in curves.items()}
    binds = [f"{name} (+{gain:.1%})" for name, gain in gains.items() if gain > tolerance]
    if binds:
        return (f"**The benchmark's {bench_cap}-epoch cap binds** for {', '.join(binds)}: training up to {longest} "
                f"epochs finds a validation NDCG@10 more than {tolerance:.0%} higher.")
    return (f"The benchmark's {bench_cap}-epoch cap does not bind: no model's best validation NDCG@10 within "
            f"{longest} epochs is more than {tolerance:.0%} above its best within {bench_cap}.")


def intro(split: str, seeds: list[int], epochs: int, bench_cap: int) -> str:
    """What the report measures (one paragraph)."""
    return (f"Early-stopping patience of the learn benchmark's sequence models, chosen on validation NDCG@10 only "
            f"({split} split, seeds {', '.join(map(str, seeds))}; no test case is scored). Each model is fitted once "
            f"per seed with the benchmark's settings and no early stop for {epochs} epochs; since patience decides "
            "only when training stops, each row is what early stopping with that patience and the benchmark's "
            f"{bench_cap}-epoch cap would have done on the same fit: the validation NDCG@10 of the epoch it keeps, "
            f"that epoch, and the epochs it trains (seed means). *Share of best*: of the best validation NDCG@10 "
            f"within {bench_cap} epochs.")


def report_section(dataset_name: str, runs: dict[str, list[dict[str, Any]]], seeds: list[int], epochs: int,
                   bench_cap: int, bench_patience: int) -> str:
    """One data set's section: the choice, the table by patience and whether the benchmark's cap binds."""
    from recllm.eval.report import format_table

    curves = {name: [r["curve"] for r in rows] for name, rows in runs.items()}
    chosen = choose_patience(curves, bench_cap)
    listed = ", ".join(map(str, PATIENCES))
    verdict = (f"**Chosen: patience {chosen}**, the smallest of {listed} that keeps at least {1 - TOLERANCE:.0%} of "
               f"the best validation NDCG@10 within {bench_cap} epochs for every model."
               if chosen is not None else
               f"**None of the patiences {listed} keeps {1 - TOLERANCE:.0%} of the best validation NDCG@10 within "
               f"{bench_cap} epochs for every model**: stop only at the cap.")
    uses = f"The learn benchmark uses patience {bench_patience}" + (
        ", the choice." if chosen == bench_patience else ", not the choice: its runs are to be refitted with it.")
    cap_rows = [{"model": name, f"best within {bench_cap}": float(np.mean([max(c[:bench_cap]) for c in cs])),
                 **({f"best within {epochs}": float(np.mean([max(c) for c in cs]))} if epochs > bench_cap else {}),
                 "best epoch per seed": " ".join(str(int(np.argmax(c)) + 1) for c in cs),
                 "s/epoch": float(np.mean([r["epoch_seconds"] for r in runs[name]]))}
                for name, cs in curves.items()]
    return "\n".join([
        f"## {dataset_name}", "", verdict, uses, "", cap_verdict(curves, bench_cap),
        "", format_table(patience_rows(curves, bench_cap), ["model", "patience", "valid ndcg@10 kept",
                                                            "share of best", "kept epoch", "epochs trained"]),
        "", f"Does the benchmark's {bench_cap}-epoch cap bind? Best validation NDCG@10 within it and within "
        f"{epochs} epochs (seed means), and the epoch of each seed's best:", "",
        format_table(cap_rows, list(cap_rows[0])),
    ])


