"""Nearest-neighbour retrieval over item embeddings: exact top-k, or a faiss index for large catalogues.

``exact`` multiplies the queries with every item vector (numpy) and keeps the top k with ``argpartition``: right
for catalogues up to a few hundred thousand items. ``flat`` is faiss' exact ``IndexFlatIP``; ``hnsw`` is faiss'
approximate graph index (inner product), for millions of items. All three share one ``search`` signature, and
exclusions (a user's seen items, the query item itself) are applied for all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

INDEX_KINDS = ("exact", "flat", "hnsw")


def _queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if q.shape[1] != dim:
        raise ValueError(f"queries have dimension {q.shape[1]}, the index holds {dim}-d vectors")
    return q


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` best columns per row, best first (``-inf`` entries come last)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((len(scores), 0), np.int64), np.zeros((len(scores), 0), np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(vals, order, axis=1)


def _finish(idx: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mark slots without a real candidate (excluded or missing) with index -1 and score -inf."""
    bad = ~np.isfinite(vals) | (idx < 0)
    idx = np.where(bad, -1, idx)
    vals = np.where(bad, -np.inf, vals).astype(np.float32)
    return idx, vals


class ExactIndex:
    """Brute-force inner-product search: ``search(queries, k, exclude)`` -> (indices, scores), best first."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray, batch_size: int = 1024) -> None:
        self.vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if self.vectors.ndim != 2:
            raise ValueError(f"item vectors must be a 2-d array, got shape {self.vectors.shape}")
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = _queries(queries, self.vectors.shape[1])
        idx_out, val_out = [], []
        for start in range(0, len(q), self.batch_size):
            scores = q[start:start + self.batch_size] @ self.vectors.T
            if exclude is not None:
                for row, items in enumerate(exclude[start:start + self.batch_size]):
                    scores[row, np.asarray(items, dtype=np.int64)] = -np.inf
            idx, vals = top_k(scores, k)
            idx_out.append(idx)
            val_out.append(vals)
        return _finish(np.concatenate(idx_out), np.concatenate(val_out))


class FaissIndex:
    """faiss ``IndexFlatIP`` (``kind="flat"``, exact) or ``IndexHNSWFlat`` over inner product (``"hnsw"``)."""

    def __init__(self, vectors: np.ndarray | None = None, kind: str = "flat", hnsw_m: int = 32,
                 ef_search: int = 128, index: Any = None) -> None:
        import faiss

        if kind not in ("flat", "hnsw"):
            raise ValueError(f"faiss index kind must be 'flat' or 'hnsw', got {kind!r}")
        self.kind = kind
        if index is None:
            vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
            if kind == "flat":
                index = faiss.IndexFlatIP(vecs.shape[1])
            else:
                index = faiss.IndexHNSWFlat(vecs.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.add(vecs)
        if kind == "hnsw":
            index.hnsw.efSearch = ef_search
        self.index = index

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, exclude: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = _queries(queries, self.index.d)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        fetch = min(k + extra, len(self))
        vals, idx = self.index.search(q, fetch)
        out_idx = np.full((len(q), k), -1, dtype=np.int64)
        out_val = np.full((len(q), k), -np.inf, dtype=np.float32)
        for row in range(len(q)):
            keep = idx[row] >= 0
            if exclude is not None:
                keep &= ~np.isin(idx[row], np.asarray(exclude[row], dtype=np.int64))
            chosen = np.flatnonzero(keep)[:k]
            out_idx[row, :len(chosen)] = idx[row, chosen]
            out_val[row, :len(chosen)] = vals[row, chosen]
        return _finish(out_idx, out_val)

    def stored_vectors(self) -> np.ndarray | None:
        """The vectors the index holds (n, dim) float32, or None for an index that cannot give them back."""
        try:
            return np.asarray(self.index.reconstruct_n(0, len(self)), dtype=np.float32).reshape(len(self), -1)
        except RuntimeError:
            return None

    def save(self, path: str | Path) -> None:
        import faiss

        from recllm.utils import atomic_path

        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))

    @classmethod
    def load(cls, path: str | Path, kind: str, ef_search: int = 128) -> "FaissIndex":
        import faiss

        return cls(kind=kind, ef_search=ef_search, index=faiss.read_index(str(path)))


def build_index(vectors: np.ndarray, kind: str = "exact", **options: Any) -> ExactIndex | FaissIndex:
    """An index of ``kind`` (``exact``, ``flat`` or ``hnsw``) over the rows of ``vectors``."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"index kind must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "exact":
        return ExactIndex(vectors, **options)
    try:
        import faiss  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"index kind {kind!r} needs faiss: pip install 'recllm[ann]' (faiss-cpu)") from exc
    return FaissIndex(vectors, kind=kind, **options)
