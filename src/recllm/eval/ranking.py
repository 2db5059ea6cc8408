"""Full-catalogue ranking evaluation: HR@K, NDCG@K, Recall@K and MRR@K per user, in memory-bounded batches.

Protocol. Every catalogue item is a candidate. The user's history items are removed from the candidates, whatever
the targets are (as RecBole's full sort does): a target the user had already consumed cannot be hit by any model.
Keeping such targets rankable while removing the other history items would tell a model which history item is the
target (a model that scores history items high would find it among a handful). A user may have several targets:
HR@K is 1 when any target is in the top K, Recall@K is the fraction of targets in the top K, NDCG@K divides the
DCG of the hits by the ideal DCG of ``min(|targets|, K)`` hits, MRR@K is 1 / rank of the best-ranked target (0
beyond K).

Ties are pessimistic: a target ranks behind every non-target candidate whose score is greater than *or equal
to* its own. A constant scorer therefore puts each target last, never first; models must earn their ranks.
Ties among a user's own targets do not matter (swapping two relevant items changes no metric), so targets are
ordered among themselves arbitrarily. Ranks come from comparison counts, not sorts of the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from recllm.eval.stats import bootstrap_ci

if TYPE_CHECKING:
    from recllm.data.split import EvalCases
    from recllm.models.base import Recommender

METRICS = ("hr", "ndcg", "recall", "mrr")


def check_ks(ks: Sequence[int] | int) -> tuple[int, ...]:
    """Validate cut-offs: positive integers, returned sorted and unique."""
    ks = (ks,) if isinstance(ks, (int, np.integer)) else tuple(ks)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    return tuple(sorted({int(k) for k in ks}))


@dataclass
class RankingResult:
    """Per-user ranking metrics (aligned with ``users``) and their bootstrap summary."""

    per_user: dict[str, np.ndarray]
    users: np.ndarray
    ks: tuple[int, ...]
    n_candidates: int
    first_rank: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def __len__(self) -> int:
        return len(self.users)

    def mean(self) -> dict[str, float]:
        """Plain means of every metric."""
        return {name: float(values.mean()) for name, values in self.per_user.items()}

    def summary(self, seed: int = 0, n_boot: int = 1000, alpha: float = 0.05) -> dict[str, tuple[float, float, float]]:
        """``{metric: (mean, ci_low, ci_high)}`` with a percentile bootstrap over users."""
        return {
            name: bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed) for name, values in self.per_user.items()
        }


# ---------------------------------------------------------------------------------------------- rank maths
def target_ranks(scores: np.ndarray, rows: np.ndarray, target_scores: np.ndarray, chunk_rows: int = 256) -> np.ndarray:
    """Pessimistic 1-based ranks of targets.

    ``scores`` is (n_rows, n_candidates) with removed candidates already at ``-inf``; target j lives in row
    ``rows[j]`` with score ``target_scores[j]`` and is itself a column of that row. ``rows`` must be sorted with
    each row's targets in descending score order; the returned ranks are then ascending within each row.
    """
    n = rows.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    n_ge_all = np.empty(n, dtype=np.int64)  # candidates (targets included) scoring >= the target
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        n_ge_all[start:stop] = (scores[rows[start:stop]] >= target_scores[start:stop, None]).sum(axis=1)
    idx = np.arange(n)
    new_row = np.r_[True, rows[1:] != rows[:-1]]
    group_start = np.maximum.accumulate(np.where(new_row, idx, 0))
    # targets of the same row scoring >= this one: up to the end of this target's run of equal scores
    new_run = new_row | np.r_[True, target_scores[1:] != target_scores[:-1]]
    run_end_next = np.r_[idx[new_run][1:], n]  # index one past each run's end
    run_id = np.cumsum(new_run) - 1
    n_ge_targets = run_end_next[run_id] - group_start
    position = idx - group_start  # 0 for the best target of a row
    return position + 1 + (n_ge_all - n_ge_targets)


def row_target_ranks(scores: Sequence[np.ndarray], target_positions: Sequence[int]) -> np.ndarray:
    """Pessimistic 1-based rank of each row's one target among that row's candidates (rows may differ in length):
    :func:`target_ranks` on the rows padded with ``-inf``, so ties rank the target lower everywhere alike."""
    n = len(scores)
    if n != len(target_positions):
        raise ValueError(f"{n} score rows but {len(target_positions)} target positions")
    if n == 0:
        return np.empty(0, dtype=np.int64)
    width = max(len(row) for row in scores)
    padded = np.full((n, width), -np.inf)
    for i, row in enumerate(scores):
        padded[i, : len(row)] = np.asarray(row, dtype=np.float64)
    rows = np.arange(n)
    return target_ranks(padded, rows, padded[rows, np.asarray(target_positions, dtype=np.int64)])


def order_targets(rows: np.ndarray, target_scores: np.ndarray) -> np.ndarray:
    """Permutation putting targets in (row ascending, score descending) order, as :func:`target_ranks` needs."""
    return np.lexsort((-target_scores, rows))


def metrics_from_ranks(
    rows: np.ndarray, ranks: np.ndarray, n_rows: int, ks: tuple[int, ...], names: Sequence[str] = METRICS
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-row ``{"hr@k", "ndcg@k", "recall@k", "mrr@k"}`` from targets' ranks, plus each row's best rank.

    ``rows`` sorted ascending, ranks ascending within a row, every row in ``range(n_rows)`` present.
    """
    n_targets = np.bincount(rows, minlength=n_rows)
    if (n_targets == 0).any():
        raise ValueError(f"row {int(np.flatnonzero(n_targets == 0)[0])} has no target")
    first = np.r_[True, rows[1:] != rows[:-1]]
    best_rank = ranks[first]
    max_k = max(ks)
    discount = 1.0 / np.log2(np.arange(2, max_k + 2))  # position 1..max_k
    ideal = np.r_[0.0, np.cumsum(discount)]  # ideal[m] = DCG of m hits at the top
    gains = 1.0 / np.log2(ranks.astype(np.float64) + 1.0)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks <= k
        hits = np.bincount(rows, weights=hit, minlength=n_rows)
        for name in names:
            if name == "hr":
                out[f"hr@{k}"] = (hits > 0).astype(np.float64)
            elif name == "recall":
                out[f"recall@{k}"] = hits / n_targets
            elif name == "ndcg":
                dcg = np.bincount(rows, weights=np.where(hit, gains, 0.0), minlength=n_rows)
                out[f"ndcg@{k}"] = dcg / ideal[np.minimum(n_targets, k)]
            elif name == "mrr":
                out[f"mrr@{k}"] = np.where(best_rank <= k, 1.0 / best_rank, 0.0)
            else:
                raise ValueError(f"unknown ranking metric {name!r}; choose from {METRICS}")
    return out, best_rank


def check_scores(scores: np.ndarray, expected_shape: tuple[int, int], who: str, users: np.ndarray) -> np.ndarray:
    """A writable floating copy of a model's scores, or a clear error for a wrong shape or non-finite values."""
    arr = np.array(scores, copy=True)
    if arr.shape != expected_shape:
        raise ValueError(f"{who} returned scores of shape {arr.shape}; expected {expected_shape} (users x candidates)")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(
            f"{who} returned a non-finite score ({arr[row, col]}) for user {int(users[row])}, column {int(col)} "
            f"({int((~finite).sum())} such scores in this batch); scores must be finite (mask nothing yourself: "
            "the evaluator removes seen items)"
        )
    return arr


# ---------------------------------------------------------------------------------------------- evaluation
def _check_items(arrays: Sequence[np.ndarray], n_items: int, what: str) -> None:
    for i, arr in enumerate(arrays):
        if arr.size and (arr.min() < 0 or arr.max() >= n_items):
            bad = int(arr.max() if arr.max() >= n_items else arr.min())
            raise ValueError(f"case {i}: {what} holds item index {bad} outside the catalogue [0, {n_items})")


def evaluate_full_ranking(
    model: "Recommender",
    cases: "EvalCases",
    ks: Sequence[int] = (10,),
    batch_size: int = 256,
    show_progress: bool = True,
    candidates: np.ndarray | None = None,
) -> RankingResult:
    """Rank the whole catalogue for every case and return per-user HR/NDCG/Recall/MRR at each K.

    Users are scored ``batch_size`` at a time, so memory stays at a few batch x catalogue arrays. ``candidates``
    (item indices), when given, ranks among those items only (e.g. the new items of a cold-start split); every
    target must be one of them.
    """
    ks = check_ks(ks)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n_items = getattr(model, "n_items_", None)
    if n_items is None:
        raise ValueError(f"{type(model).__name__} has no n_items_: call fit(split) before evaluating it")
    if len(cases) == 0:
        raise ValueError("no evaluation cases: the split left no user with both a history and a target")
    targets = [np.asarray(t, dtype=np.int64) for t in cases.targets]
    histories = [np.asarray(h, dtype=np.int64) for h in cases.histories]
    empty = [i for i, t in enumerate(targets) if t.size == 0]
    if empty:
        raise ValueError(f"case {empty[0]} (user {int(cases.users[empty[0]])}) has no target item")
    _check_items(targets, n_items, "targets")
    _check_items(histories, n_items, "history")
    outside = None
    if candidates is not None:
        candidates = np.unique(np.asarray(candidates, dtype=np.int64))
        _check_items([candidates], n_items, "candidates")
        outside = np.ones(n_items, dtype=bool)
        outside[candidates] = False
        missing = [i for i, t in enumerate(targets) if outside[t].any()]
        if missing:
            raise ValueError(f"case {missing[0]} (user {int(cases.users[missing[0]])}) has a target outside the "
                             f"{candidates.size} candidates")

    from tqdm.auto import tqdm

    n = len(cases)
    per_batch: list[dict[str, np.ndarray]] = []
    best: list[np.ndarray] = []
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=f"ranking {type(model).__name__}", unit="batch", disable=not show_progress):
        stop = min(n, start + batch_size)
        users = np.asarray(cases.users[start:stop])
        hist = histories[start:stop]
        tgt = [np.unique(t) for t in targets[start:stop]]
        scores = check_scores(model.score(users, hist), (stop - start, n_items), type(model).__name__, users)
        rows = np.repeat(np.arange(stop - start), [t.size for t in tgt])
        items = np.concatenate(tgt)
        h_rows = np.repeat(np.arange(stop - start), [h.size for h in hist])
        scores[h_rows, np.concatenate(hist) if hist else np.empty(0, np.int64)] = -np.inf  # targets too: no leak
        if outside is not None:
            scores[:, outside] = -np.inf
        t_scores = scores[rows, items]
        order = order_targets(rows, t_scores)
        rows, t_scores = rows[order], t_scores[order]
        ranks = target_ranks(scores, rows, t_scores, chunk_rows=batch_size)
        ranks[np.isneginf(t_scores)] = max(n_items, max(ks)) + 1  # a masked target: beyond every cut-off
        values, best_rank = metrics_from_ranks(rows, ranks, stop - start, ks)
        per_batch.append(values)
        best.append(best_rank)
    per_user = {name: np.concatenate([b[name] for b in per_batch]) for name in per_batch[0]}
    n_candidates = n_items if candidates is None else int(candidates.size)
    return RankingResult(per_user, np.asarray(cases.users), ks, n_candidates, np.concatenate(best))
