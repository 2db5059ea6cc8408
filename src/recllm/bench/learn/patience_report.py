"""The report of ``recllm bench learn-patience`` (:mod:`recllm.bench.learn_patience`): early stopping replayed
on stored validation curves, and the epoch cap and patience chosen on them.

Presentation only (:data:`recllm.bench.runs.PRESENTATION_MODULES`): it reads stored curves and computes nothing a
stored run holds, so editing it never makes the stored fits stale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Patiences considered: up to 50, as a cap of 200 needs (LEARN's validation NDCG@10 on ML-100K can stay below its
# best for more than 30 epochs before rising again); a patience at or above the cap is no early stop.
PATIENCES = (3, 5, 10, 15, 20, 30, 40, 50)
CAPS = (50, 100, 200, 400)  # epoch caps considered (each at most the curves' length)
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


def patience_rows(curves: dict[str, list[list[float]]], cap: int, best: dict[str, float],
                  patiences: tuple[int, ...] = PATIENCES) -> list[dict[str, Any]]:
    """Per model and patience: seed means of the kept validation NDCG@10, its share of ``best[model]``, the kept
    epoch and the epochs trained (``curves``: model -> one curve per seed), early stopping within ``cap`` epochs."""
    rows = []
    for model, seeds in curves.items():
        for patience in (*(p for p in patiences if p < cap), cap):  # a patience >= the cap: no early stop
            stops = [stop_under(c, patience, cap) for c in seeds]
            kept = float(np.mean([s[1] for s in stops]))
            rows.append({"model": model, "patience": patience if patience != cap else f"{cap} (never early)",
                         "valid ndcg@10 kept": kept,
                         "share of best": kept / best[model] if best[model] > 0 else float("nan"),
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


def choose_cap(curves: dict[str, list[list[float]]], caps: tuple[int, ...], tolerance: float = TOLERANCE) -> int:
    """The smallest of ``caps`` (each at most the shortest curve) whose best validation NDCG@10 (seed mean) is at
    least (1 - ``tolerance``) times the best of the whole curve for every model; the curves' length when none is."""
    longest = min(len(c) for seeds in curves.values() for c in seeds)
    for cap in sorted(c for c in caps if c < longest):
        if all(np.mean([max(c[:cap]) for c in seeds]) >= (1 - tolerance) * np.mean([max(c[:longest]) for c in seeds])
               for seeds in curves.values()):
            return cap
    return longest


def intro(split: str, seeds: list[int], epochs: int, bench_cap: int) -> str:
    """What the report measures (one paragraph)."""
    return (f"The learn benchmark's epoch cap and early-stopping patience for its sequence models, chosen on "
            f"validation NDCG@10 only ({split} split, seeds {', '.join(map(str, seeds))}; no test case is scored). "
            f"Each model is fitted once per seed with the benchmark's settings (its cap is {bench_cap} epochs) and no "
            f"early stop for {epochs} epochs. "
            "Patience and the cap decide only when training stops, never what an epoch does, so each row is what "
            "early stopping with that cap and patience would have done on the same fit: the validation NDCG@10 of "
            "the epoch it keeps, that epoch, and the epochs it trains (seed means). *Share of best*: of the best "
            f"validation NDCG@10 within the {epochs} epochs. The cap chosen is the smallest of "
            f"{', '.join(map(str, CAPS))} within {TOLERANCE:.0%} of that best for every model; the patience chosen, "
            f"the smallest of {', '.join(map(str, PATIENCES))} that keeps at least {1 - TOLERANCE:.0%} of the best "
            "within the chosen cap for every model.")


def report_section(dataset_name: str, runs: dict[str, list[dict[str, Any]]], seeds: list[int], epochs: int,
                   bench_cap: int, bench_patience: int) -> str:
    """One data set's section: the chosen cap and patience, the benchmark's against them, and the table."""
    from recllm.eval.report import format_table

    curves = {name: [r["curve"] for r in rows] for name, rows in runs.items()}
    longest = min(len(c) for seeds in curves.values() for c in seeds)
    cap = choose_cap(curves, CAPS)
    patience = choose_patience(curves, cap)
    best = {name: float(np.mean([max(c[:longest]) for c in seeds])) for name, seeds in curves.items()}
    lines = [f"## {dataset_name}", ""]
    stop = f"patience {patience}" if patience is not None else "no early stop"
    lines.append(f"**Chosen: an epoch cap of {cap} and {stop}.**" + (
        f" The curves end at {longest} epochs, so whether {cap} binds too is not measured: rerun with "
        f"`--epochs {2 * longest}` to check it." if cap == longest else ""))
    now = {name: float(np.mean([stop_under(c, bench_patience, bench_cap)[1] for c in seeds]))
           for name, seeds in curves.items()}
    lines.append(f"The learn benchmark uses a cap of {bench_cap} and patience {bench_patience}"
                 + (", the choice." if (cap, patience) == (bench_cap, bench_patience) else
                    "; what they keep, as a share of the best within the curve: "
                    + ", ".join(f"{name} {now[name] / best[name]:.1%}" for name in curves) + "."))
    rows = []
    for each_cap in dict.fromkeys((bench_cap, cap)):
        rows += [{**row, "cap": each_cap} for row in patience_rows(curves, each_cap, best)]
    lines += ["", format_table(rows, ["model", "cap", "patience", "valid ndcg@10 kept", "share of best",
                                      "kept epoch", "epochs trained"]), "",
              f"The best epoch of each seed ({', '.join(map(str, seeds))}) and the training time per epoch:", "",
              format_table([{"model": name, "best epoch per seed": " ".join(str(int(np.argmax(c)) + 1) for c in cs),
                             f"best within {longest}": best[name],
                             "s/epoch": float(np.mean([r["epoch_seconds"] for r in runs[name]]))}
                            for name, cs in curves.items()],
                           ["model", "best epoch per seed", f"best within {longest}", "s/epoch"])]
    return "\n".join(lines)
