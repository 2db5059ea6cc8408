"""The fixed sampled candidates of LLM-TRSR's protocol: drawn once per (data set, stage, seed), then reused.

Used by ``recllm trsr train|rank`` and by the benchmark (:mod:`recllm.bench.trsr`), so both score the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recllm.data import Split
from recllm.eval import SampledCandidates
from recllm.utils import cache_dir


def subset_rows(cands: SampledCandidates, n: int, seed: int = 0) -> SampledCandidates:
    """A seeded subset of ``n`` rows (kept in order), or all rows when there are fewer."""
    rows = np.arange(len(cands))
    if n < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    return SampledCandidates(cands.case[rows], cands.users[rows], [cands.histories[i] for i in rows],
                             cands.candidates[rows], cands.positive[rows], cands.n_items, cands.seed, cands.dataset)


def fixed_candidates(split: Split, stage: str, seed: int = 0, n_negatives: int = 20) -> tuple[SampledCandidates, Path]:
    """The stage's sampled candidates, drawn once per (data set, stage, seed) and then loaded from the cache.

    Negatives are drawn from the items anyone interacted with: Amazon's metadata lists ~15x more items than its
    reviews touch, and negatives drawn from those would be told apart by popularity alone."""
    name = f"{split.dataset.name}-{split.name}-{stage}-neg{n_negatives}-interacted-seed{seed}.parquet"
    path = cache_dir("trsr", "candidates") / name
    if path.exists():
        cands = SampledCandidates.load(path)
        if cands.n_items == split.dataset.n_items:
            return cands, path
    dataset = split.dataset
    pool = dataset.item_index(dataset.interactions["item_id"].unique())
    cands = SampledCandidates.draw(dataset, split.eval_cases(stage), n_negatives=n_negatives, seed=seed, pool=pool)
    cands.save(path)
    return cands, path
