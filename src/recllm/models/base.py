"""The contract every retrieval/ranking model follows (after benfred/implicit's RecommenderBase)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recllm.data.split import Split


def check_k(k: int) -> int:
    """``k`` (how many items to return) as an int; ValueError unless it is a whole number of at least 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def check_histories(histories: list[np.ndarray], n_items: int, users: np.ndarray | None = None) -> None:
    """ValueError unless every history holds whole item indices in ``[0, n_items)`` (and, given ``users``, there is
    one history per user): an index past the catalogue would fail deep inside a model, a negative one would
    silently count as another item (or as padding), a fraction would be cut to a whole index."""
    if users is not None and len(users) != len(histories):
        raise ValueError(f"got {len(users)} users but {len(histories)} histories")
    for i, hist in enumerate(histories):
        hist = np.asarray(hist)
        if hist.size == 0:
            continue
        if hist.dtype.kind not in "iu":
            raise ValueError(f"history {i} holds {hist.dtype} values; histories are whole item indices")
        if hist.min() < 0 or hist.max() >= n_items:
            raise ValueError(f"history {i} holds an item index outside [0, {n_items})")


class Params:
    """scikit-learn's parameter protocol without importing scikit-learn: ``get_params(deep)`` / ``set_params(**p)``
    over the constructor's named arguments (``name__sub`` reaches a nested estimator's), so ``sklearn.base.clone``
    gives an unfitted copy and a grid search can set parameters. Subclasses that keep their parameters elsewhere
    (a config dataclass) override :meth:`_param_names`, :meth:`_get_param` and :meth:`_set_params`."""

    @classmethod
    def _param_names(cls) -> list[str]:
        """The constructor's named arguments (not ``*args`` / ``**kwargs``), sorted."""
        if cls.__init__ is object.__init__:
            return []
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def _get_param(self, name: str) -> Any:
        return getattr(self, name)

    def _set_params(self, params: dict[str, Any]) -> None:
        for name, value in params.items():
            setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters by name; with ``deep``, a nested estimator's as ``name__param`` too."""
        out: dict[str, Any] = {}
        for name in self._param_names():
            value = self._get_param(name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{key}", sub) for key, sub in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params: Any) -> Any:
        """Set constructor parameters (``name__param`` for a nested estimator's) and return self; an unknown name
        is a ValueError listing the known ones."""
        names = self._param_names()
        own: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in names:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; its parameters: {', '.join(names)}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                own[name] = value
        if own:
            self._set_params(own)
        for name, sub_params in nested.items():
            self._get_param(name).set_params(**sub_params)
        return self


class Recommender(Params, ABC):
    """A model that scores every catalogue item for a user given the user's chronological history.

    scikit-learn semantics: ``__init__`` stores keyword arguments only (``get_params`` / ``set_params``, so
    ``sklearn.base.clone`` works); :meth:`fit` learns from ``split.train`` (``split.valid`` only for early stopping /
    model selection) and returns ``self``; learned state lives in attributes ending in ``_``.
    """

    n_items_: int

    @abstractmethod
    def fit(self, split: "Split") -> "Recommender":
        """Learn from ``split.train``; may use ``split.valid`` for early stopping only."""

    @abstractmethod
    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """Scores of shape (len(users), n_items): higher is better. ``histories`` are item indices, oldest first."""

    def recommend(
        self, users: np.ndarray, histories: list[np.ndarray], k: int = 10, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores per user, best first; seen items removed when ``filter_seen``.

        ``k`` must be at least 1 (ValueError otherwise); fewer than ``k`` columns come back when the catalogue is
        smaller. With ``filter_seen`` a seen item scores ``-inf``, so a row with fewer than ``k`` unseen items
        ends with seen ones at ``-inf`` (the arrays stay rectangular; drop those slots by their score)."""
        k = check_k(k)
        scores = np.asarray(self.score(users, histories), dtype=np.float32).copy()
        if filter_seen:
            for row, hist in enumerate(histories):
                scores[row, hist] = -np.inf
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)
