"""LEARN's content embedding generator (CEG): a frozen language model encodes every item's text.

The text of each catalogue item (``dataset.item_texts()``: title, genres, tags, description, whatever the data set
declares) is encoded once by a frozen model through :func:`recllm.llm.embed_texts` (mean of the last hidden
states over non-padding tokens for a causal LM; the model's own pooling for a sentence-transformers encoder),
cached on disk by ``recllm.llm``'s :class:`DiskCache`, so a second run costs nothing.

Mean-pooled causal-LM states are highly anisotropic (SmolLM2-135M: mean pairwise cosine ~0.99), so the raw
vectors are centred and PCA-whitened before use (:class:`Whitener`); the statistics come from the catalogue's
texts only (no interactions), so using them for cold items leaks nothing.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recllm.utils import check_device, is_integer

if TYPE_CHECKING:
    from recllm.data.dataset import RecDataset

# Short names for the two bundled models; anything else is a Hugging Face id or local folder.
ALIASES = {"smollm2": ("causal", None), "minilm": ("sentence", None), "all-minilm-l6-v2": ("sentence", None)}
WHITEN_MODES = ("none", "center", "whiten")
EMPTY_TEXT = "(no description)"


@dataclass
class ContentConfig:
    """Which frozen model encodes item text, and how the vectors are post-processed."""

    model: str = "smollm2"
    kind: str = "auto"  # "causal", "sentence" or "auto" (from the alias; HF ids default to causal)
    max_length: int = 128
    batch_size: int = 32
    dtype: str = "auto"  # causal LMs' precision: "auto" is the machine's (recllm.llm.precision) or a named one
    whiten: str = "whiten"
    whiten_dim: int | None = 256
    device: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"ContentConfig.model must be a model name, HF id or folder, got {self.model!r}")
        if self.kind not in ("auto", "causal", "sentence"):
            raise ValueError(f"ContentConfig.kind must be 'auto', 'causal' or 'sentence', got {self.kind!r}")
        for name in ("max_length", "batch_size"):
            if not is_integer(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"ContentConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        from recllm.llm.precision import check_dtype

        check_dtype(self.dtype, "ContentConfig.dtype")
        if self.whiten not in WHITEN_MODES:
            raise ValueError(f"ContentConfig.whiten must be one of {WHITEN_MODES}, got {self.whiten!r}")
        if self.whiten_dim is not None and (not is_integer(self.whiten_dim) or self.whiten_dim < 1):
            raise ValueError(f"ContentConfig.whiten_dim must be a positive integer or None, got {self.whiten_dim!r}")
        check_device(self.device, "ContentConfig.device")

    def resolved_kind(self) -> str:
        if self.kind != "auto":
            return self.kind
        return ALIASES.get(self.model.lower(), ("causal", None))[0]


def load_content_model(config: ContentConfig) -> Any:
    """The frozen encoder named by ``config`` (loaded through ``recllm.llm``, never here directly)."""
    from recllm.llm import load_causal_lm, load_text_encoder

    name = None if config.model.lower() in ALIASES else config.model
    if config.resolved_kind() == "sentence":
        return load_text_encoder(name, device=config.device, dtype=config.dtype)
    return load_causal_lm(name, device=config.device, dtype=config.dtype)


_MEMO: dict[tuple[Any, ...], np.ndarray] = {}


class _WriteOnly:
    """A view of a cache that finds nothing but stores what it is given: a fresh computation that fills the cache."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    def key(self, **params: Any) -> str:
        return self.cache.key(**params)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return {}

    def put_many(self, items: dict[str, Any]) -> None:
        self.cache.put_many(items)


def raw_item_embeddings(texts: list[str], config: ContentConfig, cache: Any = None,
                        model: Any = None, engine: str = "local", ray_options: Any = None,
                        fresh: bool = False, show_progress: bool = True) -> np.ndarray:
    """(n_items, hidden) float32 embeddings of ``texts`` from the frozen model; cached in memory and on disk.

    ``cache`` is a :class:`recllm.llm.cache.DiskCache` (default: the user's cache file); pass ``False`` to skip it.
    ``engine="ray"`` embeds on a Ray actor pool (``ray_options``: ``recllm.distributed.ray_jobs.RayOptions``),
    with identical vectors and the same cache entries. ``fresh``: compute every vector (neither cache is read, both
    are written), e.g. to time the encoder. ``show_progress``: the embedding progress bar.
    """
    from recllm.llm import embed_texts
    from recllm.llm.cache import DiskCache

    digest = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()
    memo_key = (config.model, config.resolved_kind(), config.max_length, config.dtype, digest)
    if memo_key in _MEMO and not fresh:
        return _MEMO[memo_key]
    if cache is None:
        cache = DiskCache(namespace="learn-content")
    if fresh and cache is not False:
        cache = _WriteOnly(cache)
    model = model if model is not None else load_content_model(config)
    emb = embed_texts(model, texts, pooling="mean", batch_size=config.batch_size, max_length=config.max_length,
                      cache=None if cache is False else cache, engine=engine, ray_options=ray_options,
                      show_progress=show_progress)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.shape[0] != len(texts) or not np.isfinite(emb).all():
        raise ValueError(f"content model {config.model!r} returned bad embeddings of shape {emb.shape}")
    _MEMO[memo_key] = emb
    return emb


@dataclass
class Whitener:
    """``(x - mean) @ projection``: centring, or centring + PCA whitening to ``dim`` components."""

    mean: np.ndarray
    projection: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, mode: str = "whiten", dim: int | None = 256, eps: float = 1e-6) -> "Whitener":
        if mode not in WHITEN_MODES:
            raise ValueError(f"whiten mode must be one of {WHITEN_MODES}, got {mode!r}")
        x = np.asarray(x, dtype=np.float64)
        width = x.shape[1]
        if mode == "none":
            return cls(np.zeros(width, np.float32), np.eye(width, dtype=np.float32))
        mean = x.mean(axis=0)
        if mode == "center":
            return cls(mean.astype(np.float32), np.eye(width, dtype=np.float32))
        # eigen-decomposition of the (width x width) covariance, in torch so it honours the caller's thread count
        import torch

        centred = torch.from_numpy(x - mean)
        var, vecs = torch.linalg.eigh(centred.T @ centred / max(len(x) - 1, 1))
        var, vecs = var.flip(0).clamp(min=0).numpy(), vecs.flip(1).numpy()  # descending variance
        keep = int((var > eps * max(var.max(), eps)).sum())
        keep = min(keep, dim) if dim is not None else keep
        projection = vecs[:, :keep] / np.sqrt(var[:keep] + eps)
        return cls(mean.astype(np.float32), projection.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) @ self.projection).astype(np.float32)


def mean_pairwise_cosine(x: np.ndarray, max_rows: int = 2000) -> float:
    """Average cosine over distinct pairs (of at most ``max_rows`` rows): an anisotropy check."""
    x = np.asarray(x[:max_rows], dtype=np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


def catalogue_texts(dataset: "RecDataset") -> list[str]:
    """Every catalogue item's text (index order), empty ones replaced by a placeholder."""
    texts = dataset.item_texts()
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if len(empty) == len(texts):
        raise ValueError(f"data set {dataset.name!r}: every item text is empty; declare item text columns in its schema")
    return [t if t.strip() else EMPTY_TEXT for t in texts]  # a model cannot encode zero tokens


def item_content_embeddings(dataset: "RecDataset", config: ContentConfig | None = None, cache: Any = None,
                            model: Any = None, fit_rows: np.ndarray | None = None,
                            show_progress: bool = True) -> tuple[np.ndarray, Whitener]:
    """Whitened content embeddings of every catalogue item (index order) and the whitener, fitted on the items of
    ``fit_rows`` (default every item; a split's :meth:`~recllm.data.split.Split.known_items` keeps the items it
    holds out as new out of the whitening statistics)."""
    config = config or ContentConfig()
    raw = raw_item_embeddings(catalogue_texts(dataset), config, cache=cache, model=model,
                              show_progress=show_progress)
    whitener = Whitener.fit(raw if fit_rows is None else raw[fit_rows], config.whiten, config.whiten_dim)
    return whitener.transform(raw), whitener


def content_for(dataset: "RecDataset", show_progress: bool = False, encoder: str = "smollm2",
                cache: Any = None) -> tuple[np.ndarray, float]:
    """Raw content embeddings of the catalogue by ``encoder`` (an alias of :data:`ALIASES`, an HF id or a folder;
    cached on disk) and the seconds it took.

    Computed in ``recllm.llm``'s reproducible precision on every machine (not "auto"), so stored runs from a CPU
    with native bfloat16 and one without see the same embeddings. ``cache``: as in :func:`raw_item_embeddings`.
    ``show_progress`` is accepted for callers' symmetry; the encoder's own bar follows recllm.llm's settings.
    """
    start = time.perf_counter()
    emb = raw_item_embeddings(catalogue_texts(dataset), content_config(encoder), cache=cache)
    return emb, time.perf_counter() - start


def content_config(encoder: str = "smollm2") -> ContentConfig:
    """The :class:`ContentConfig` of ``encoder`` in ``recllm.llm``'s reproducible precision (benchmarks' inputs)."""
    from recllm.llm.precision import REPRODUCIBLE_DTYPE

    return ContentConfig(model=encoder, dtype=REPRODUCIBLE_DTYPE)
