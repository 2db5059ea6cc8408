"""Content k-nearest-neighbours: rank items by how close their text embedding is to the history's.

``score(u, j) = cos(x_j, mean of x_h over the distinct history items h)``, where ``x`` are the item-text embeddings
of a frozen encoder, centred and PCA-whitened exactly as LEARN's input (:class:`recllm.learn.encoder.ContentConfig`
of the encoder) and scaled to unit length. Nothing is learned from interactions, so an item nobody has engaged with
is scored like any other: the reference a content-based cold-start recommender has to beat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recllm.errors import UserInputError
from recllm.models.base import Recommender, check_histories

if TYPE_CHECKING:
    from recllm.data.split import Split


class ContentKNN(Recommender):
    """Cosine between each item's content vector and the mean content vector of the user's history.

    Parameters: ``content_embeddings`` (n_items, width), optional raw item-text embeddings in catalogue order (to
    reuse one encoding across models); otherwise ``encoder`` (an alias of :mod:`recllm.learn.encoder`, an HF id or
    a folder) embeds ``split.dataset.item_texts()`` on fit (cached on disk). ``last_n``: only the ``last_n`` most
    recent history items form the query (None: the whole history). Deterministic.
    Learned state: ``item_vectors_`` (n_items, d) unit rows, ``n_items_``.
    """

    def __init__(self, content_embeddings: np.ndarray | None = None, encoder: str = "smollm2",
                 last_n: int | None = None) -> None:
        self.content_embeddings = content_embeddings
        self.encoder = encoder
        self.last_n = last_n

    def fit(self, split: "Split") -> "ContentKNN":
        from recllm.learn.encoder import Whitener, content_config, content_for

        if self.last_n is not None and (isinstance(self.last_n, bool) or not isinstance(self.last_n, (int, np.integer))
                                        or self.last_n < 1):
            raise UserInputError(f"last_n must be a positive integer or None, got {self.last_n!r}", "ContentKNN")
        n_items = split.dataset.n_items
        if self.content_embeddings is None:
            raw, _ = content_for(split.dataset, encoder=self.encoder)
        else:
            raw = np.asarray(self.content_embeddings, dtype=np.float32)
            if raw.ndim != 2 or raw.shape[0] != n_items or not np.isfinite(raw).all():
                raise UserInputError(f"content_embeddings has shape {raw.shape} or non-finite values",
                                     "ContentKNN(content_embeddings=...)",
                                     f"pass finite ({n_items}, width) embeddings in catalogue order")
        config = content_config(self.encoder)
        # whitening statistics from the items the split lets a model know (not its held-out new items)
        whitener = Whitener.fit(raw[split.known_items()], config.whiten, config.whiten_dim)
        x = whitener.transform(raw).astype(np.float64)
        x /= np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
        self.item_vectors_ = x.astype(np.float32)
        self.n_items_ = n_items
        return self

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """(n, d) unit-length mean content vector of each history's distinct items (zeros for an empty one)."""
        out = np.zeros((len(histories), self.item_vectors_.shape[1]), dtype=np.float64)
        for row, hist in enumerate(histories):
            hist = np.asarray(hist, dtype=np.int64)
            if self.last_n is not None:
                hist = hist[-int(self.last_n):]
            if hist.size:
                out[row] = self.item_vectors_[np.unique(hist)].mean(axis=0)
        return out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        if not hasattr(self, "item_vectors_"):
            raise RuntimeError("ContentKNN is not fitted: call fit(split) first")
        check_histories(histories, self.n_items_, users)
        return (self.user_vectors(histories) @ self.item_vectors_.T.astype(np.float64)).astype(np.float32)
