"""`recllm demo`: the main job on real data with the bundled models, one short section per system, cached."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable


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


# Explicit registry, in the order the demo runs them: name -> (title, section). A system's section is the
# ``demo_section(seed=..., show_progress=...)`` of its package's ``demo`` module, imported only when it runs.
SECTIONS: dict[str, tuple[str, Callable[[int, bool], None] | str]] = {
    "baselines": ("Baselines: popularity and item-kNN on MovieLens-100K", _baselines_section),
    "impute": ("LLM imputation (arXiv 2407.10078): masked film year and genres on MovieLens-100K",
               "recllm.impute.demo"),
    "learn": ("LEARN (arXiv 2405.03988): cold-start retrieval with frozen-LLM item embeddings", "recllm.learn.demo"),
    "trsr": ("LLM-TRSR (arXiv 2403.13325): summaries and P(Yes) ranking on Amazon magazines", "recllm.trsr.demo"),
    "serve": ("recllm serve: LEARN behind the HTTP service on a loopback port; a new film recommendable at once",
              "recllm.serve.demo"),
}


def run_demo(seed: int = 0, show_progress: bool = True, sections: list[str] | None = None) -> int:
    """Run the chosen demo sections (default: all) in turn, printing each one's table and time."""
    chosen = list(sections or SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown demo section(s) {unknown}; choose from {list(SECTIONS)}")
    # Idle OpenMP threads sleep instead of spinning (read when torch loads, so only before its first import): with
    # another process on a core, a spinning 2-thread matmul stalls on the descheduled thread. Measured on the 2-core
    # EPYC with other jobs running (load ~4): the LLM-TRSR section took 868 s spinning, 208 s sleeping.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from recllm.llm.precision import describe_precision

    print(f"precision: {describe_precision()} (dtype 'auto'; the demo's models run in it)", flush=True)
    for name in chosen:
        title, section = SECTIONS[name]
        start = time.perf_counter()
        print(f"\n== {title} ==", flush=True)
        if isinstance(section, str):
            importlib.import_module(section).demo_section(seed=seed, show_progress=show_progress)
        else:
            section(seed, show_progress)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    return 0
