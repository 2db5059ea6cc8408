"""`recllm demo`: the main job on real data with the bundled models, short and cached."""

from __future__ import annotations

import time


def _baselines_section(seed: int, show_progress: bool) -> None:
    from recllm.data import leave_one_out, load
    from recllm.eval.baselines import DEMO_GRID, run_baselines
    from recllm.eval.report import format_table

    start = time.perf_counter()
    dataset = load("ml-100k", show_progress=show_progress)
    split = leave_one_out(dataset)
    results = run_baselines(split, grid=DEMO_GRID, ks=(10,), seed=seed, show_progress=show_progress)
    print(f"MovieLens-100K: {len(dataset.interactions):,} ratings, {dataset.n_users} users, {dataset.n_items} items; "
          f"chronological leave-one-out, {results.n_test_users} test users, full-catalogue ranking "
          "(item-kNN tuned on validation)")
    print(format_table(results.table_rows(), ["model", "params", "hr@10", "ndcg@10"]))
    print(f"(95% bootstrap CIs over users; {time.perf_counter() - start:.1f} s)")


def run_demo(seed: int = 0, show_progress: bool = True) -> int:
    """Run every demo section in turn and print its table."""
    print("== Baselines: popularity and item-kNN on MovieLens-100K ==")
    _baselines_section(seed, show_progress)
    return 0
