"""Scores made elsewhere (another library, another process), served to recllm's evaluation harness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recllm.models.base import Recommender

if TYPE_CHECKING:
    from recllm.data.split import Split


class PrecomputedScores(Recommender):
    """A (users x catalogue) score matrix looked up by user index.

    Lets recllm's harness rank another library's scores with exactly the code it uses for its own models
    (the same users, candidates, history masking, tie rule and metrics).
    """

    def __init__(self, scores: np.ndarray, users: np.ndarray) -> None:
        self.scores = scores
        self.users = users

    def fit(self, split: Split) -> "PrecomputedScores":
        """Check the matrix covers the catalogue of ``split`` and index its rows by user."""
        if self.scores.shape != (len(self.users), split.dataset.n_items):
            raise ValueError(f"scores have shape {self.scores.shape}; expected ({len(self.users)}, "
                             f"{split.dataset.n_items}) = (scored users, catalogue items)")
        self.n_items_ = split.dataset.n_items
        self.row_ = {int(u): i for i, u in enumerate(self.users)}
        return self

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """The stored rows of ``users``; a user that was not scored is an error, never a zero row."""
        missing = [int(u) for u in users if int(u) not in self.row_]
        if missing:
            raise KeyError(f"user index {missing[0]} has no precomputed scores ({len(missing)} such users)")
        return self.scores[[self.row_[int(u)] for u in users]]
