"""The fixed sampled candidates of LLM-TRSR's protocol: drawn once per (data set, stage, seed), then reused.

Used by ``recllm trsr train|rank`` and by the benchmark (:mod:`recllm.bench.trsr`), so both score the same rows.
A cached file is reused only when the JSON beside it records the same drawing settings (:func:`draw_settings_sha256`:
the seed, the negatives, the pool and the stage's cases) and the sha256 of the file's own bytes; anything else is
drawn again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from recllm.data import Split
from recllm.eval import SampledCandidates
from recllm.utils import cache_dir, package_source_sha256, sha256_arrays, write_json_atomic


def subset_rows(cands: SampledCandidates, n: int, seed: int = 0) -> SampledCandidates:
    """A seeded subset of ``n`` rows (kept in order), or all rows when there are fewer."""
    rows = np.arange(len(cands))
    if n < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    return SampledCandidates(cands.case[rows], cands.users[rows], [cands.histories[i] for i in rows],
                             cands.candidates[rows], cands.positive[rows], cands.n_items, cands.seed, cands.dataset)


def candidates_sha256(*sets: SampledCandidates) -> str:
    """sha256 of the rows of ``sets`` as they are scored: cases, users, histories, candidate items, positives."""
    parts: list[object] = []
    for cands in sets:
        parts += [cands.case, cands.users, cands.candidates, cands.positive, cands.n_items]
        parts += [np.asarray(h, dtype=np.int64) for h in cands.histories]
    return sha256_arrays(parts)


def draw_settings_sha256(split: Split, stage: str, seed: int, n_negatives: int, pool: np.ndarray) -> str:
    """sha256 of everything :meth:`SampledCandidates.draw` reads: the data set and split names, stage, seed,
    negatives per row, catalogue size, pool, the stage's cases (users, histories, targets) and the source of
    ``recllm.eval``, which draws them (a changed protocol draws again)."""
    cases = split.eval_cases(stage)
    head = json.dumps([split.dataset.name, split.name, stage, seed, n_negatives, split.dataset.n_items,
                       package_source_sha256("recllm.eval")])
    parts: list[object] = [np.frombuffer(head.encode(), dtype=np.uint8), np.unique(np.asarray(pool, dtype=np.int64)),
                           np.asarray(cases.users, dtype=np.int64)]
    for history, targets in zip(cases.histories, cases.targets):
        parts += [np.asarray(history, dtype=np.int64), np.asarray(targets, dtype=np.int64)]
    return sha256_arrays(parts)


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fixed_candidates(split: Split, stage: str, seed: int = 0, n_negatives: int = 20) -> tuple[SampledCandidates, Path]:
    """The stage's sampled candidates, drawn once per (data set, stage, seed) and then loaded from the cache
    (when the JSON beside the file records the same drawing settings and the file's sha256; else drawn again).

    Negatives are drawn from the items anyone interacted with: Amazon's metadata lists ~15x more items than its
    reviews touch, and negatives drawn from those would be told apart by popularity alone."""
    name = f"{split.dataset.name}-{split.name}-{stage}-neg{n_negatives}-interacted-seed{seed}.parquet"
    path = cache_dir("trsr", "candidates") / name
    record = path.with_suffix(".json")
    dataset = split.dataset
    pool = dataset.item_index(dataset.interactions["item_id"].unique())
    settings = draw_settings_sha256(split, stage, seed, n_negatives, pool)
    if path.exists() and record.exists():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        if saved.get("settings") == settings and saved.get("sha256") == _file_sha256(path):
            return SampledCandidates.load(path), path
    cands = SampledCandidates.draw(dataset, split.eval_cases(stage), n_negatives=n_negatives, seed=seed, pool=pool)
    cands.save(path)
    write_json_atomic(record, {"settings": settings, "sha256": _file_sha256(path)})
    return cands, path
