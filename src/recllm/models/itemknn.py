"""Item-based k-nearest-neighbours (cosine with shrinkage), after benfred/implicit's ItemItemRecommender.

Similarity: ``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrinkage)`` on the binary train user-item matrix
(users who interacted with i, resp. j). Each item keeps only its ``k`` most similar neighbours. A user's score for
item j is the sum, over the history items h, of ``w_h * sim(h, j)``, where ``w_h`` is 1, or with
``recency_decay=d`` equal to ``d ** (steps from the end of the history)`` so recent items count more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recllm.data.dataset import ITEM, USER
from recllm.models.base import Recommender, check_histories
from recllm.utils import is_finite_number, is_integer

if TYPE_CHECKING:
    from recllm.data.split import Split


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row (ties broken by lower column index)."""
    matrix = matrix.tocsr().copy()
    matrix.sort_indices()
    keep = np.ones(matrix.nnz, dtype=bool)
    indptr = matrix.indptr
    for row in np.flatnonzero(np.diff(indptr) > k):
        start, stop = indptr[row], indptr[row + 1]
        order = np.argsort(-matrix.data[start:stop], kind="stable")  # stable: lower column first on ties
        keep[start + order[k:]] = False
    if keep.all():
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(indptr))
    return sp.csr_matrix((matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape)


class ItemKNN(Recommender):
    """Item-item cosine neighbours on the training interactions; non-sequential, deterministic, fast.

    Parameters: ``k`` neighbours kept per item; ``shrinkage`` added to the cosine denominator (damps similarities
    supported by few users); ``recency_decay`` in (0, 1] or None (weights history items by recency).
    Learned state: ``similarity_`` (n_items x n_items sparse, row h = neighbours of h), ``n_items_``.
    """

    def __init__(self, k: int = 100, shrinkage: float = 10.0, recency_decay: float | None = None) -> None:
        self.k = k
        self.shrinkage = shrinkage
        self.recency_decay = recency_decay

    def _check_params(self) -> None:
        if not is_integer(self.k) or self.k < 1:
            raise ValueError(f"ItemKNN: k must be a positive integer, got {self.k!r}")
        if not (is_finite_number(self.shrinkage) and self.shrinkage >= 0):
            raise ValueError(f"ItemKNN: shrinkage must be a finite number >= 0, got {self.shrinkage!r}")
        decay = self.recency_decay
        if decay is not None and not (is_finite_number(decay) and 0 < decay <= 1):
            raise ValueError(f"ItemKNN: recency_decay must be in (0, 1] or None, got {self.recency_decay!r}")

    def fit(self, split: "Split") -> "ItemKNN":
        self._check_params()
        dataset, frame = split.dataset, split.train
        if frame.empty:
            raise ValueError(f"split {split.name!r} of {dataset.name!r} has no training interactions")
        n_items = dataset.n_items
        users = dataset.user_index(frame[USER])
        items = dataset.item_index(frame[ITEM])
        x = sp.csr_matrix((np.ones(users.size, dtype=np.float64), (users, items)), shape=(dataset.n_users, n_items))
        x.data[:] = 1.0  # binary: repeated interactions count once
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        rows = np.repeat(np.arange(n_items), np.diff(co.indptr))
        co.data = co.data / (norms[rows] * norms[co.indices] + self.shrinkage)
        self.similarity_ = top_k_per_row(co, int(self.k)).astype(np.float32)
        self.n_items_ = n_items
        return self

    def history_weights(self, histories: list[np.ndarray]) -> sp.csr_matrix:
        """(n, n_items) sparse weights of each history (an item seen twice keeps its most recent weight)."""
        indptr, indices, data = [0], [], []
        for hist in histories:
            hist = np.asarray(hist, dtype=np.int64)
            if self.recency_decay is None:
                weights = np.ones(hist.size)
            else:
                weights = float(self.recency_decay) ** np.arange(hist.size - 1, -1, -1, dtype=np.float64)
            uniq, last = np.unique(hist[::-1], return_index=True)  # first in reversed order = most recent
            indices.append(uniq)
            data.append(weights[::-1][last])
            indptr.append(indptr[-1] + uniq.size)
        cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype))
        return sp.csr_matrix((cat(data, np.float32), cat(indices, np.int64), np.asarray(indptr)),
                             shape=(len(histories), self.n_items_))

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "similarity_"):
            raise RuntimeError("ItemKNN is not fitted: call fit(split) first")
        check_histories(histories, self.n_items_, users)
        return np.asarray((self.history_weights(histories) @ self.similarity_).todense(), dtype=np.float32)
