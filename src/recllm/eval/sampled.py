"""Sampled-candidate evaluation (LLM-TRSR's protocol): each positive is ranked against fixed random negatives.

The negatives are drawn once, with a seed, uniformly from the catalogue excluding the user's history and
targets (a target the user had already consumed gets no row: it would be the one familiar candidate), then saved
as parquet so that every method (ID models, LLM rankers) ranks exactly the same candidates.
Candidates are shuffled within each row (the positive's column is stored), so a scorer that looks at candidate
order, such as an LLM reading a list, cannot find the positive by position. Ties are pessimistic, as in
:mod:`recllm.eval.ranking`. This mode is secondary: full-catalogue ranking is the default protocol.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recllm.eval.ranking import RankingResult, check_ks, check_scores, metrics_from_ranks, target_ranks
from recllm.utils import atomic_path

if TYPE_CHECKING:
    from recllm.data.dataset import RecDataset
    from recllm.data.split import EvalCases
    from recllm.models.base import Recommender

ScoreFn = Callable[[np.ndarray, list[np.ndarray], np.ndarray], np.ndarray]
SAMPLED_METRICS = ("recall", "mrr", "ndcg")
_META_KEY = b"recllm.sampled_candidates"
_FORMAT_VERSION = 1


def _draw_negatives(rng: np.random.Generator, n_items: int, excluded: np.ndarray, n_negatives: int) -> np.ndarray:
    """``n_negatives`` distinct items drawn uniformly from ``range(n_items)`` minus ``excluded``."""
    available = n_items - excluded.size
    if available < 2 * n_negatives or available < n_items // 2:
        pool = np.setdiff1d(np.arange(n_items), excluded, assume_unique=True)
        return rng.choice(pool, size=n_negatives, replace=False)
    chosen: list[int] = []
    seen = set(excluded.tolist())
    while len(chosen) < n_negatives:  # rejection sampling: cheap when most of the catalogue is allowed
        for item in rng.integers(0, n_items, size=2 * n_negatives).tolist():
            if item not in seen:
                seen.add(item)
                chosen.append(item)
                if len(chosen) == n_negatives:
                    break
    return np.asarray(chosen, dtype=np.int64)


@dataclass
class SampledCandidates:
    """One row per (case, target): the user, their history, and 1 positive + ``n_negatives`` shuffled candidates."""

    case: np.ndarray
    users: np.ndarray
    histories: list[np.ndarray]
    candidates: np.ndarray
    positive: np.ndarray
    n_items: int
    seed: int
    dataset: str = ""

    def __post_init__(self) -> None:
        n = len(self.case)
        if not (len(self.users) == len(self.histories) == len(self.candidates) == len(self.positive) == n):
            raise ValueError("case, users, histories, candidates and positive must have one entry per row")
        if self.candidates.ndim != 2 or self.candidates.shape[1] < 2:
            raise ValueError(
                f"candidates must be (rows, 1 + n_negatives) with n_negatives >= 1, got {self.candidates.shape}"
            )
        if n and (self.positive.min() < 0 or self.positive.max() >= self.candidates.shape[1]):
            raise ValueError("positive holds a column outside the candidate matrix")

    def __len__(self) -> int:
        return len(self.case)

    @property
    def n_negatives(self) -> int:
        return self.candidates.shape[1] - 1

    @property
    def positives(self) -> np.ndarray:
        """The positive item of each row."""
        return self.candidates[np.arange(len(self)), self.positive]

    @classmethod
    def draw(
        cls, dataset: "RecDataset", cases: "EvalCases", n_negatives: int = 20, seed: int = 0,
        pool: np.ndarray | None = None,
    ) -> "SampledCandidates":
        """Draw the negatives once: per case, uniform over the catalogue minus the user's history and targets.

        ``pool`` (item indices) restricts the negatives to part of the catalogue, e.g. the items anyone
        interacted with, where the catalogue also lists items no one ever chose (Amazon metadata). A case with
        several targets gives one row per target, each with its own negatives. A target already in the user's
        history (a re-consumption) gets no row: among negatives drawn outside the history it would be the one
        candidate the user had consumed, which points at it (:func:`recllm.eval.ranking.evaluate_full_ranking`
        cannot hit such a target either); ``len(cases)`` minus the distinct ``case`` values counts the cases left
        without a row.
        """
        if n_negatives < 1:
            raise ValueError(f"n_negatives must be at least 1, got {n_negatives}")
        n_items = dataset.n_items
        if pool is not None:
            pool = np.unique(np.asarray(pool, dtype=np.int64))
            if pool.size and (pool[0] < 0 or pool[-1] >= n_items):
                raise ValueError(f"pool holds item indices outside [0, {n_items})")
        rng = np.random.default_rng(seed)
        rows_case, rows_cands, rows_pos = [], [], []
        for i in range(len(cases)):
            hist = np.asarray(cases.histories[i], dtype=np.int64)
            targets = np.unique(np.asarray(cases.targets[i], dtype=np.int64))
            if targets.size == 0:
                raise ValueError(f"case {i} (user {int(cases.users[i])}) has no target item")
            excluded = np.union1d(hist, targets)
            if excluded.size and (excluded[0] < 0 or excluded[-1] >= n_items):
                raise ValueError(f"case {i} (user {int(cases.users[i])}) refers to an item outside [0, {n_items})")
            eligible = None if pool is None else np.setdiff1d(pool, excluded, assume_unique=True)
            available = n_items - excluded.size if eligible is None else eligible.size
            if available < n_negatives:  # the data set is too small for the protocol: the user's to fix
                from recllm.errors import UserInputError

                user = int(cases.users[i])
                shown = dataset.users["user_id"].iloc[user] if 0 <= user < len(dataset.users) else user
                raise UserInputError(
                    f"user {shown!r} has only {available} items{'' if pool is None else ' of the pool'} that are "
                    f"neither in their history nor targets, fewer than the {n_negatives} negatives each candidate "
                    "list needs", f"data set {dataset.name!r}, case {i}",
                    f"use a data set with more items (each user needs {n_negatives} interacted items outside "
                    "their own history)")
            for target in np.setdiff1d(targets, hist, assume_unique=False):
                negatives = (_draw_negatives(rng, n_items, excluded, n_negatives) if eligible is None
                             else rng.choice(eligible, size=n_negatives, replace=False))
                order = rng.permutation(n_negatives + 1)
                row = np.r_[target, negatives][order]
                rows_case.append(i)
                rows_cands.append(row)
                rows_pos.append(int(np.flatnonzero(order == 0)[0]))
        case = np.asarray(rows_case, dtype=np.int64)
        return cls(
            case=case,
            users=np.asarray(cases.users, dtype=np.int64)[case],
            histories=[np.asarray(cases.histories[i], dtype=np.int64) for i in rows_case],
            candidates=np.asarray(rows_cands, dtype=np.int64).reshape(len(rows_case), n_negatives + 1),
            positive=np.asarray(rows_pos, dtype=np.int64),
            n_items=n_items,
            seed=seed,
            dataset=dataset.name,
        )

    # ------------------------------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the rows as parquet (atomically), with n_items, seed and data set name in the file metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({
            "case": pa.array(self.case, pa.int64()),
            "user": pa.array(self.users, pa.int64()),
            "history": pa.array([h.tolist() for h in self.histories], pa.list_(pa.int64())),
            "candidates": pa.array(self.candidates.tolist(), pa.list_(pa.int64())),
            "positive": pa.array(self.positive, pa.int64()),
        })
        meta = {"version": _FORMAT_VERSION, "n_items": self.n_items, "seed": self.seed, "dataset": self.dataset}
        table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "SampledCandidates":
        """Read a file written by :meth:`save`; a missing or foreign file gets an error naming it."""
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sampled candidates file {str(path)!r} does not exist; create it with "
                                    "SampledCandidates.draw(...).save(path)")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise ValueError(
                f"{str(path)!r} is not a recllm sampled-candidates file (no {_META_KEY.decode()} metadata)"
            )
        meta = json.loads(raw)
        if meta.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format version {meta.get('version')}; this recllm reads {_FORMAT_VERSION}"
            )
        cols = table.to_pydict()
        width = len(cols["candidates"][0]) if cols["candidates"] else 2
        return cls(
            case=np.asarray(cols["case"], dtype=np.int64),
            users=np.asarray(cols["user"], dtype=np.int64),
            histories=[np.asarray(h, dtype=np.int64) for h in cols["history"]],
            candidates=np.asarray(cols["candidates"], dtype=np.int64).reshape(len(cols["case"]), width),
            positive=np.asarray(cols["positive"], dtype=np.int64),
            n_items=int(meta["n_items"]),
            seed=int(meta["seed"]),
            dataset=str(meta.get("dataset", "")),
        )


# ---------------------------------------------------------------------------------------------- evaluation
def from_recommender(model: "Recommender") -> ScoreFn:
    """Adapt a fitted Recommender to a sampled ``score_fn``: score the catalogue, keep the candidates' scores."""
    n_items = getattr(model, "n_items_", None)
    if n_items is None:
        raise ValueError(f"{type(model).__name__} has no n_items_: call fit(split) before evaluating it")

    def score_fn(users: np.ndarray, histories: list[np.ndarray], candidates: np.ndarray) -> np.ndarray:
        full = check_scores(model.score(users, histories), (len(users), n_items), type(model).__name__, users)
        return np.take_along_axis(full, candidates, axis=1)

    return score_fn


def evaluate_sampled(
    score_fn: ScoreFn,
    candidates: SampledCandidates,
    ks: Sequence[int] = (3, 5, 10),
    batch_size: int = 256,
    show_progress: bool = True,
) -> RankingResult:
    """Rank each row's candidates with ``score_fn(users, histories, candidate_matrix) -> (n, 1 + n_neg)``.

    Returns per-row ``recall@k`` (= hit rate, one positive per row), ``mrr@k`` and ``ndcg@k``.
    """
    ks = check_ks(ks)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(candidates) == 0:
        raise ValueError("no sampled candidates to evaluate")
    from tqdm.auto import tqdm

    width = candidates.candidates.shape[1]
    name = getattr(score_fn, "__qualname__", "score_fn")
    per_batch, best = [], []
    n = len(candidates)
    for start in tqdm(range(0, n, batch_size), desc="sampled ranking", unit="batch", disable=not show_progress):
        stop = min(n, start + batch_size)
        users = candidates.users[start:stop]
        cands = candidates.candidates[start:stop]
        raw = score_fn(users, candidates.histories[start:stop], cands.copy())
        scores = check_scores(raw, (stop - start, width), name, users)
        rows = np.arange(stop - start)
        ranks = target_ranks(scores, rows, scores[rows, candidates.positive[start:stop]], chunk_rows=batch_size)
        values, best_rank = metrics_from_ranks(rows, ranks, stop - start, ks, names=SAMPLED_METRICS)
        per_batch.append(values)
        best.append(best_rank)
    per_row = {key: np.concatenate([b[key] for b in per_batch]) for key in per_batch[0]}
    return RankingResult(per_row, candidates.users.copy(), ks, width, np.concatenate(best))
