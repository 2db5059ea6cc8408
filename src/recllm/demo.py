"""`recllm demo`: the main job on real data with the bundled models, short and cached."""

from __future__ import annotations

import time


def _baselines_section(seed: int, show_progress: bool) -> None:
    from recllm.data import leave_one_out, load
    from recllm.eval import evaluate_full_ranking
    from recllm.eval.report import fmt_ci, format_table
    from recllm.models import MODELS

    start = time.perf_counter()
    dataset = load("ml-100k")
    split = leave_one_out(dataset)
    cases = split.eval_cases("test")
    print(f"MovieLens-100K: {len(dataset.interactions):,} ratings, {dataset.n_users} users, {dataset.n_items} items; "
          f"chronological leave-one-out, {len(cases)} test users, full-catalogue ranking")
    rows = []
    for name in ("popularity", "itemknn"):
        model = MODELS[name]().fit(split)
        summary = evaluate_full_ranking(model, cases, ks=(10,), show_progress=show_progress).summary(seed=seed)
        rows.append({"model": name, **{m: fmt_ci(*summary[m]) for m in ("hr@10", "ndcg@10")}})
    print(format_table(rows, ["model", "hr@10", "ndcg@10"]))
    print(f"(95% bootstrap CIs over users; {time.perf_counter() - start:.1f} s)")


def run_demo(seed: int = 0, show_progress: bool = True) -> int:
    """Run every demo section in turn and print its table."""
    print("== Baselines: popularity and item-kNN on MovieLens-100K ==")
    _baselines_section(seed, show_progress)
    return 0
