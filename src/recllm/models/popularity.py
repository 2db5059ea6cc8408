"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recllm.data.dataset import ITEM, USER
from recllm.models.base import Recommender, check_histories

if TYPE_CHECKING:
    from recllm.data.split import Split


class Popularity(Recommender):
    """Scores each item by its count in ``split.train`` (the same ranking for every user).

    Equal counts stay tied; the evaluator breaks ties pessimistically, so the baseline is not flattered.
    ``distinct_users=True`` counts each user at most once per item (repeat consumption then adds nothing).
    """

    def __init__(self, distinct_users: bool = False) -> None:
        self.distinct_users = distinct_users

    def fit(self, split: "Split") -> "Popularity":
        frame = split.train
        if frame.empty:
            raise ValueError(f"split {split.name!r} of {split.dataset.name!r} has no training interactions")
        if self.distinct_users:
            frame = frame.drop_duplicates(subset=[USER, ITEM])
        self.n_items_ = split.dataset.n_items
        items = split.dataset.item_index(frame[ITEM])
        self.counts_ = np.bincount(items, minlength=self.n_items_).astype(np.float32)
        return self

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "counts_"):
            raise RuntimeError("Popularity is not fitted: call fit(split) first")
        check_histories(histories, self.n_items_, users)
        return np.repeat(self.counts_[None, :], len(users), axis=0)
