"""Scoring continuations of one prefix: log-likelihoods and next-token log-probs, with a shared-prefix KV cache.

Ranking many candidates for one user repeats the same long prompt; running it once and expanding its KV cache over
the candidates removes most of the work. Both paths tokenize prefix and continuation separately and concatenate the
ids, so they see identical tokens and agree to float rounding (``shared_prefix=False`` is the reference).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recllm.llm.backbone import CausalLM
from recllm.llm.precision import resolve_dtype, torch_dtype

# Cap on the logits plus KV-cache elements held per forward, so a big batch x long continuation x large vocabulary
# (or a large model's KV cache expanded over the batch) fits memory; batches are split below it. Raise on big GPUs.
MAX_BATCH_ELEMENTS = 128_000_000


def _tokenize(lm: CausalLM, text: str) -> list[int]:
    return list(lm.tokenizer(text, add_special_tokens=False).input_ids)


@lru_cache(maxsize=32)
def _accepts_logits_to_keep(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


@lru_cache(maxsize=32)
def _cache_argument(model_type: type) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers 5.x), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model_type.forward).parameters else "past_key_values"


def _base(model: torch.nn.Module) -> torch.nn.Module:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _kv_elements_per_token(model: torch.nn.Module) -> int:
    """Keys + values stored per token across layers (0 when the config does not say)."""
    cfg = getattr(model, "config", None)
    try:
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        return int(2 * cfg.num_hidden_layers * kv_heads * head_dim)
    except (AttributeError, TypeError, ZeroDivisionError):
        return 0


class _PreciseAnswerHead(torch.nn.Module):
    """Output layer for half-precision scoring: every logit from the fast half-precision product (returned as
    float32), and the answer tokens' logits recomputed in float32.

    A Yes/No scorer only uses the *difference* of the answer logits (softmax over them), and the log-softmax
    normaliser cancels in it, so the result is what a float32 output layer gives, at half-precision cost.
    """

    def __init__(self, head: torch.nn.Module, token_ids: Sequence[int]) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("ids", torch.tensor(list(token_ids), dtype=torch.long), persistent=False)
        self.register_buffer("rows", head.weight.detach()[self.ids].float().clone(), persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # callers read the vocabulary size from it
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden).float()
        logits[..., self.ids] = torch.nn.functional.linear(hidden.float(), self.rows)
        return logits


def scoring_lm(lm: CausalLM, dtype: str = "auto", answer_ids: Sequence[int] = ()) -> CausalLM:
    """The model to score answer tokens with, in precision ``dtype`` ("auto": the machine's policy,
    :mod:`recllm.llm.precision`): ``lm`` itself when it is float32 already; else a copy in that precision whose
    ``answer_ids`` logits are computed in float32 (the caller's model is left alone).

    bfloat16 logits have ~3 significant digits, so P(Yes) of a user's 21 candidates collapses onto a handful of
    values and ties decide the ranks; float32 answer logits from bfloat16 hidden states keep them distinct.
    """
    dtype = resolve_dtype(dtype, lm.device or "cpu")
    if dtype == "float32" and lm.dtype == "float32":
        return lm
    if dtype != "float32" and not answer_ids:
        raise ValueError(f"{dtype} scoring needs the answer token ids whose logits are kept in float32")
    model = copy.deepcopy(lm.model).to(torch_dtype(dtype)).eval()
    if dtype == "float32":
        return dataclasses.replace(lm, model=model, dtype="float32")
    base = _base(model)
    base.set_output_embeddings(_PreciseAnswerHead(base.get_output_embeddings(), answer_ids))
    return dataclasses.replace(lm, model=model, dtype=f"{dtype}+float32-answers")


def _sub_batches(lengths: Sequence[int], batch_size: int, row_cost: Callable[[int], int]) -> list[list[int]]:
    """Index batches, shortest continuations first (less padding), of at most ``batch_size`` rows and about
    ``MAX_BATCH_ELEMENTS`` elements each (``row_cost(width)``: elements one row of that continuation width holds)."""
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
        grown = max(width, lengths[i])
        if current and (len(current) >= batch_size or (len(current) + 1) * row_cost(grown) > MAX_BATCH_ELEMENTS):
            batches.append(current)
            current, grown = [], lengths[i]
        current.append(i)
        width = grown
    if current:
        batches.append(current)
    return batches


def _pad_right(rows: Sequence[Sequence[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids.to(device), mask.to(device)


def _batch_cache(cache: Any, rows: int) -> Any:
    """A per-batch copy of the prefix KV cache expanded to ``rows``. Plain dynamic layers share the prefix tensors as
    broadcast views (forward replaces them by concatenation, never writes into them); other caches are copied."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if layers and all(type(layer) is DynamicLayer for layer in layers):
        batch_cache = copy.copy(cache)
        batch_cache.layers = []
        for layer in layers:
            view = copy.copy(layer)
            view.keys = layer.keys.expand(rows, -1, -1, -1)
            view.values = layer.values.expand(rows, -1, -1, -1)
            batch_cache.layers.append(view)
        return batch_cache
    batch_cache = copy.deepcopy(cache)  # forward appends to the cache in place
    batch_cache.batch_repeat_interleave(rows)
    return batch_cache


def _logits_at(model: torch.nn.Module, keep_kw: bool, index: torch.Tensor, **inputs: Any) -> torch.Tensor:
    """Logits ``(B, vocab)`` at position ``index[b]`` of each row, projecting only those positions when possible."""
    if keep_kw:
        return model(**inputs, logits_to_keep=index[:, None]).logits[:, 0]
    logits = model(**inputs).logits
    return logits[torch.arange(len(index), device=logits.device), index]


def _continuation_logprobs(
    lm: CausalLM, prefix_ids: list[int], conts: list[list[int]], shared_prefix: bool, batch_size: int,
    last_only: bool,
) -> list[torch.Tensor]:
    """Float32 log-softmax rows per continuation c (length L): ``(L + 1, vocab)`` where row j predicts token j of c
    (row 0 right after the prefix) and row L the token after c; with ``last_only``, just that last row ``(vocab,)``."""
    model = lm.model
    pad_id = lm.tokenizer.pad_token_id
    n_prefix = len(prefix_ids)
    vocab = model.get_output_embeddings().weight.shape[0]
    out: list[torch.Tensor] = [torch.empty(0)] * len(conts)
    prefix = torch.tensor([prefix_ids], dtype=torch.long, device=lm.device)
    keep_kw = _accepts_logits_to_keep(type(_base(model)))
    kv_per_token = _kv_elements_per_token(_base(model))

    def row_cost(width: int) -> int:  # float32 logits and their log-softmax, plus the KV cache of the row
        return 2 * (1 if last_only else width + 1) * vocab + (n_prefix + width + 1) * kv_per_token

    with torch.no_grad():
        if shared_prefix:
            first = model(prefix, use_cache=True, **({"logits_to_keep": 1} if keep_kw else {}))
            cache = first["cache"] if "cache" in first else first.past_key_values
            prefix_last = first.logits[0, -1].float().log_softmax(-1)
        for rows in _sub_batches([len(c) for c in conts], batch_size, row_cost):
            batch = [conts[i] for i in rows]
            lengths = torch.tensor([len(c) for c in batch], device=lm.device)
            width = int(lengths.max())
            if shared_prefix:
                ids, mask = _pad_right(batch, pad_id, lm.device)
                inputs = {
                    "input_ids": ids,
                    "attention_mask": torch.cat([torch.ones_like(mask[:, :1]).expand(-1, n_prefix), mask], dim=1),
                    "position_ids": torch.arange(n_prefix, n_prefix + ids.shape[1], device=lm.device).expand(
                        len(batch), -1),
                    _cache_argument(type(_base(model))): _batch_cache(cache, len(batch)),
                    "use_cache": True,
                }
                if last_only:
                    last = _logits_at(model, keep_kw, (lengths - 1).clamp(min=0), **inputs).float().log_softmax(-1)
                    logprobs = torch.where((lengths > 0)[:, None], last, prefix_last)
                else:
                    logprobs = model(**inputs).logits.float().log_softmax(-1)
                    logprobs = torch.cat([prefix_last.expand(len(batch), 1, -1), logprobs], dim=1)
            else:
                ids, mask = _pad_right([prefix_ids + c for c in batch], pad_id, lm.device)
                inputs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
                if last_only:
                    logprobs = _logits_at(model, keep_kw, n_prefix + lengths - 1, **inputs).float().log_softmax(-1)
                else:
                    kwargs = {"logits_to_keep": width + 1} if keep_kw else {}
                    logprobs = model(**inputs, **kwargs).logits[:, -(width + 1) :].float().log_softmax(-1)
            for row, i in enumerate(rows):
                out[i] = logprobs[row] if last_only else logprobs[row, : len(conts[i]) + 1]
    return out


def _prepare(lm: CausalLM, prefix: str, continuations: Sequence[str], batch_size: int):
    if isinstance(continuations, str):
        raise TypeError("continuations must be a sequence of strings, not one string")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prefix_ids = _tokenize(lm, prefix)
    if not prefix_ids:
        raise ValueError("prefix is empty: the first continuation token needs a context to be scored against")
    return prefix_ids, [_tokenize(lm, c) for c in continuations]


def score_continuations(
    lm: CausalLM, prefix: str, continuations: Sequence[str], shared_prefix: bool = True, batch_size: int = 64
) -> np.ndarray:
    """Sum of the token log-probs of each continuation after ``prefix`` (float64 array, 0 for an empty one)."""
    prefix_ids, conts = _prepare(lm, prefix, continuations, batch_size)
    if not conts:
        return np.zeros(0)
    rows = _continuation_logprobs(lm, prefix_ids, conts, shared_prefix, batch_size, last_only=False)
    scores = np.zeros(len(conts))
    for i, (ids, lp) in enumerate(zip(conts, rows)):
        if ids:
            target = torch.tensor(ids, device=lp.device)
            scores[i] = lp[: len(ids)].gather(1, target[:, None]).sum().item()
    return scores


def next_token_logprobs(
    lm: CausalLM,
    prefix: str,
    continuations: Sequence[str],
    token_ids: Sequence[int],
    shared_prefix: bool = True,
    batch_size: int = 64,
) -> np.ndarray:
    """Log-probs (over the whole vocabulary) of ``token_ids`` as the next token after ``prefix + continuation``.

    Returns ``(len(continuations), len(token_ids))`` float32. P(Yes) against No is the softmax of the two columns.
    """
    token_ids = [int(t) for t in token_ids]
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    if not token_ids or any(t < 0 or t >= vocab for t in token_ids):
        raise ValueError(f"token_ids must be a non-empty list of ids in [0, {vocab}), got {token_ids}")
    prefix_ids, conts = _prepare(lm, prefix, continuations, batch_size)
    if not conts:
        return np.zeros((0, len(token_ids)), dtype=np.float32)
    rows = _continuation_logprobs(lm, prefix_ids, conts, shared_prefix, batch_size, last_only=True)
    index = torch.tensor(token_ids)
    return np.stack([lp[index.to(lp.device)].cpu().numpy() for lp in rows]).astype(np.float32)


def next_token_logprobs_many(
    lm: CausalLM,
    groups: Sequence[tuple[str, Sequence[str]]],
    token_ids: Sequence[int],
    shared_prefix: bool = True,
    batch_size: int = 64,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """``next_token_logprobs`` for many ``(prefix, continuations)`` groups (e.g. one per user), with progress."""
    return [
        next_token_logprobs(lm, prefix, conts, token_ids, shared_prefix=shared_prefix, batch_size=batch_size)
        for prefix, conts in tqdm(groups, desc="scoring", unit="prefix", disable=not show_progress)
    ]


def score_continuations_many(
    lm: CausalLM,
    groups: Sequence[tuple[str, Sequence[str]]],
    shared_prefix: bool = True,
    batch_size: int = 64,
    show_progress: bool = True,
) -> list[np.ndarray]:
    """``score_continuations`` for many ``(prefix, continuations)`` groups, with progress."""
    return [
        score_continuations(lm, prefix, conts, shared_prefix=shared_prefix, batch_size=batch_size)
        for prefix, conts in tqdm(groups, desc="scoring", unit="prefix", disable=not show_progress)
    ]


def yes_probability(logprobs: np.ndarray) -> np.ndarray:
    """P(first column) from a softmax over the columns of ``next_token_logprobs`` output, e.g. [Yes, No] -> P(Yes)."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    shifted = logprobs - logprobs.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    return (probs[:, 0] / probs.sum(axis=1)).astype(np.float64)
