"""Text embeddings from a causal LM (pooled last hidden states) or a sentence-transformers encoder, cached per text.

Causal-LM embeddings of a small model are highly anisotropic (mean pairwise cosine ~0.99 for SmolLM2): center or
whiten them before using cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recllm.llm.backbone import CausalLM, llm_code_version
from recllm.llm.scoring import _accepts_logits_to_keep, _base

EMBED_VERSION = 1  # bump when pooling or tokenization changes, so cached vectors are not reused
POOLINGS = ("mean", "last")


def encoder_fingerprint(model: Any) -> str:
    """Cache-key identity of a model: ``CausalLM.fingerprint``, or name + dtype + :func:`llm_code_version` of a
    sentence-transformers model."""
    if isinstance(model, CausalLM):
        return model.fingerprint
    name = getattr(model, "recllm_name", None)
    if name is None:
        first = model[0] if hasattr(model, "__getitem__") else model
        config = getattr(getattr(first, "auto_model", None), "config", None)
        name = getattr(config, "_name_or_path", None) or type(model).__name__
    dtype = next(model.parameters()).dtype
    return f"{name}|{str(dtype).removeprefix('torch.')}|code={llm_code_version()}"


def _check(model: Any, texts: Sequence[str], pooling: str, batch_size: int, max_length: int) -> None:
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    if batch_size < 1 or max_length < 1:
        raise ValueError(f"batch_size and max_length must be >= 1, got {batch_size} and {max_length}")
    allowed = POOLINGS if isinstance(model, CausalLM) else ("mean",)
    if pooling not in allowed:
        raise ValueError(f"pooling must be one of {allowed} for {type(model).__name__}, got {pooling!r}"
                         + ("" if isinstance(model, CausalLM) else " (an encoder uses its own pooling)"))
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        if not text.strip():
            raise ValueError(f"texts[{i}] is empty: it has no tokens to embed; substitute a placeholder text")


def _dimension(model: Any) -> int:
    if isinstance(model, CausalLM):
        return int(model.model.get_output_embeddings().weight.shape[1])
    return int(model.get_sentence_embedding_dimension())


def _embed_causal(lm: CausalLM, texts: list[str], pooling: str, max_length: int) -> np.ndarray:
    enc = lm.tokenizer(texts, padding=True, padding_side="right", truncation=True, max_length=max_length,
                       return_tensors="pt").to(lm.device)
    keep = {"logits_to_keep": 1} if _accepts_logits_to_keep(type(_base(lm.model))) else {}
    with torch.no_grad():
        out = lm.model(**enc, output_hidden_states=True, **keep)
    hidden = out.hidden_states[-1].float()  # after the final norm
    mask = enc.attention_mask.to(hidden.dtype)
    if pooling == "mean":
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    else:
        last = enc.attention_mask.sum(1) - 1
        pooled = hidden[torch.arange(len(texts), device=hidden.device), last]
    return pooled.cpu().numpy().astype(np.float32)


def _embed_encoder(model: Any, texts: list[str], batch_size: int, max_length: int) -> np.ndarray:
    previous = model.max_seq_length
    model.max_seq_length = min(max_length, previous) if previous else max_length
    try:
        vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    finally:
        model.max_seq_length = previous
    return np.asarray(vectors, dtype=np.float32)


def cached_embeddings(model: Any, texts: Sequence[str], pooling: str, max_length: int, cache: Any
                      ) -> tuple[dict[str, str], dict[str, np.ndarray], list[str]]:
    """``(cache key per distinct text, vectors already cached, texts still to embed)``, the texts to embed longest
    first so similar lengths share a batch. The one definition of the embedding cache keys (local and Ray)."""
    unique = list(dict.fromkeys(texts))
    params = {"task": "embed", "version": EMBED_VERSION, "model": encoder_fingerprint(model),
              "pooling": pooling, "max_length": max_length}
    keys = {t: cache.key(**params, text=t) for t in unique} if cache is not None else {}
    done: dict[str, np.ndarray] = {}
    if cache is not None:
        found = cache.get_many(list(keys.values()))
        done = {t: np.asarray(found[k], dtype=np.float32) for t, k in keys.items() if k in found}
    return keys, done, sorted((t for t in unique if t not in done), key=len, reverse=True)


def embed_texts(
    model: Any,
    texts: Sequence[str],
    pooling: str = "mean",
    batch_size: int = 32,
    max_length: int = 128,
    cache: Any = None,
    show_progress: bool = True,
    engine: str = "local",
    ray_options: Any = None,
) -> np.ndarray:
    """Embed ``texts`` into a float32 array ``(len(texts), dim)``, truncating each to ``max_length`` tokens.

    ``model`` is a ``CausalLM`` (``pooling="mean"`` over non-padding tokens of the last hidden state, or
    ``"last"``: the last token's state) or a sentence-transformers model (its own pooling via ``encode``). With a
    ``cache`` (``DiskCache``), vectors are stored per text and reused; duplicate texts are embedded once.
    ``engine="ray"`` runs the batches on a Ray actor pool (``ray_options``: a
    ``recllm.distributed.ray_jobs.RayOptions``) with identical results and the same cache keys.
    """
    if engine != "local":
        from recllm.distributed import check_engine

        check_engine(engine)
        from recllm.distributed.ray_jobs import embed_texts_ray

        return embed_texts_ray(model, texts, pooling, batch_size, max_length, cache, show_progress, ray_options)
    _check(model, texts, pooling, batch_size, max_length)
    texts = list(texts)
    keys, done, todo = cached_embeddings(model, texts, pooling, max_length, cache)
    with tqdm(total=len(todo), desc="embedding", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            if isinstance(model, CausalLM):
                vectors = _embed_causal(model, batch, pooling, max_length)
            else:
                vectors = _embed_encoder(model, batch, batch_size, max_length)
            done.update(zip(batch, vectors))
            if cache is not None:
                cache.put_many({keys[t]: v for t, v in zip(batch, vectors)})
            bar.update(len(batch))
    if not texts:
        return np.zeros((0, _dimension(model)), dtype=np.float32)
    return np.stack([done[t] for t in texts]).astype(np.float32, copy=False)
