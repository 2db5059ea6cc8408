"""Batched greedy generation from already-templated prompts, optionally constrained to a token set and cached.

Greedy decoding makes outputs a pure function of (model, prompt, settings), which is what lets a content-addressed
cache (``recllm.llm.cache.DiskCache``) resume interrupted jobs and skip repeated prompts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from recllm.llm.backbone import CausalLM
from recllm.llm.number_shape import NumberShape, NumberShapeProcessor
from recllm.llm.scoring import MAX_BATCH_ELEMENTS, _kv_elements_per_token

GENERATE_VERSION = 1  # bump when the decoding procedure changes, so cached outputs are not reused
MAX_GENERATE_ROWS = 64  # the widest batch ``batch_size=None`` makes
MEMORY_SHARE = 8  # a generation batch may hold up to 1/MEMORY_SHARE of the memory free when it starts


class AllowedTokensProcessor(LogitsProcessor):
    """Masks every logit except ``allowed`` (EOS should be among them so generation can stop)."""

    def __init__(self, allowed: Sequence[int]) -> None:
        self.allowed = torch.tensor(sorted(set(int(t) for t in allowed)), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        index = self.allowed.to(scores.device)
        masked[:, index] = scores[:, index]
        return masked


def _token_texts(tokenizer: Any, ids: Sequence[int]) -> dict[int, str]:
    """Each token id's text as it reads inside a decoded string (leading space kept)."""
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    return {int(i): tokenizer.convert_tokens_to_string([t]) for i, t in zip(ids, tokens) if t is not None}


def eos_token_ids(lm: CausalLM) -> list[int]:
    """The ids that end generation: the model's generation config, else the tokenizer's EOS."""
    eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"{lm.name!r} defines no EOS token; generation could not stop")
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


class _StepProgress(StoppingCriteria):
    """Never stops generation; reports each decoding step as ``rows / max_new_tokens`` prompts done."""

    def __init__(self, report: Callable[[float], None], rows: int, max_new_tokens: int) -> None:
        self.report, self.share, self.reported = report, rows / max_new_tokens, 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self.report(self.share)
        self.reported += self.share
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def _free_bytes() -> int:
    """Memory free now (0 where the OS does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def batch_rows(lm: CausalLM, prompt_tokens: int, max_new_tokens: int, limit: int = MAX_GENERATE_ROWS) -> int:
    """How many prompts of up to ``prompt_tokens`` tokens fit one generation batch (at most ``limit``): each row
    holds its KV cache over prompt + new tokens, the prefill's activations and attention, and a row of logits; a
    batch holds at most ``1/MEMORY_SHARE`` of the free memory (and never less than
    ``recllm.llm.scoring.MAX_BATCH_ELEMENTS`` float32 elements). Wide batches pay: decoding is bound by reading
    the weights once per step, whatever the number of rows (16 prompts took half the CPU time at batch 16 as at 4)."""
    cfg = getattr(lm.model, "config", None)
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    inner = int(getattr(cfg, "intermediate_size", 0) or 4 * hidden)
    heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
    vocab = int(lm.model.get_output_embeddings().weight.shape[0])
    width = prompt_tokens + max_new_tokens
    row = width * (_kv_elements_per_token(lm.model) + 4 * hidden + 2 * inner + heads * width) + 2 * vocab
    budget = max(MAX_BATCH_ELEMENTS, _free_bytes() // (4 * MEMORY_SHARE))
    return max(1, min(limit, budget // max(row, 1)))


def _check(lm: CausalLM, prompts: Sequence[str], max_new_tokens: int, batch_size: int | None,
           allowed_token_ids: Sequence[int] | None) -> list[int] | None:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if max_new_tokens < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens} and {batch_size}")
    if allowed_token_ids is None:
        return None
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    allowed = sorted({int(t) for t in allowed_token_ids})
    bad = [t for t in allowed if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"allowed_token_ids holds ids outside the vocabulary [0, {vocab}): {bad[:10]}")
    return allowed


def _generate_batch(lm: CausalLM, prompts: list[str], max_new_tokens: int, allowed: list[int] | None,
                    number_shape: NumberShape | None = None, progress: Callable[[float], None] | None = None
                    ) -> list[str]:
    tok = lm.tokenizer
    enc = tok(prompts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt").to(lm.device)
    eos = eos_token_ids(lm)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
        eos_token_id=eos, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos[0],
    )
    processors = LogitsProcessorList([AllowedTokensProcessor(allowed + eos)] if allowed is not None else [])
    if number_shape is not None:
        processors.append(NumberShapeProcessor(number_shape, _token_texts(tok, allowed), eos, enc.input_ids.shape[1]))
    steps = _StepProgress(progress, len(prompts), max_new_tokens) if progress is not None else None
    with torch.no_grad():
        out = lm.model.generate(
            input_ids=enc.input_ids, attention_mask=enc.attention_mask, generation_config=config,
            logits_processor=processors, stopping_criteria=StoppingCriteriaList([steps] if steps else []),
        )
    if steps is not None and steps.reported < len(prompts):  # rows ended at their EOS early: report the rest
        progress(len(prompts) - steps.reported)
    new_tokens = out[:, enc.input_ids.shape[1] :]
    return tok.batch_decode(new_tokens, skip_special_tokens=True)


def cached_generations(lm: CausalLM, prompts: Sequence[str], max_new_tokens: int, allowed: list[int] | None,
                       number_shape: NumberShape | None, cache: Any
                       ) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """``(keys, done, todo)`` of :func:`generate`'s cache (the one key recipe, also used on Ray): each distinct
    prompt's key (none without ``cache``), the completions already cached, and the distinct prompts still to
    generate in first-seen order. ``allowed`` is the checked, sorted token set (or None)."""
    params = {"task": "generate", "version": GENERATE_VERSION, "model": lm.fingerprint,
              "max_new_tokens": max_new_tokens, "allowed_token_ids": allowed}
    if number_shape is not None:
        if allowed is None:
            raise ValueError("number_shape needs allowed_token_ids (the number tokens it chooses among)")
        params["number_shape"] = dataclasses.asdict(number_shape)
    unique = list(dict.fromkeys(prompts))
    keys = {p: cache.key(**params, prompt=p) for p in unique} if cache is not None else {}
    done: dict[str, str] = {}
    if cache is not None:
        found = cache.get_many(list(keys.values()))
        done = {p: found[k] for p, k in keys.items() if k in found}
    return keys, done, [p for p in unique if p not in done]


def generate(
    lm: CausalLM,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int | None = None,
    allowed_token_ids: Sequence[int] | None = None,
    cache: Any = None,
    show_progress: bool = True,
    number_shape: NumberShape | None = None,
    progress: Callable[[float], None] | None = None,
    on_cache_hits: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy completions of ``prompts`` (already chat-templated; see ``chat_prompt``), special tokens removed.

    Stops at EOS or after ``max_new_tokens``. ``allowed_token_ids`` restricts every new token to that set plus
    EOS (e.g. the digit tokens for numeric answers); ``number_shape`` (with ``allowed_token_ids``, the number
    tokens) further keeps every answer a number of that shape (sign, integer digits, decimals). With ``cache`` (a
    ``DiskCache``), finished prompts are stored batch by batch and reused; duplicate prompts are generated once.
    Prompts are batched longest first with left padding, each batch as wide as memory allows (:func:`batch_rows`;
    ``batch_size`` caps it); every sequence ends at its own EOS. ``progress(n)`` is called as decoding advances with
    the (fractional) number of prompts done since the last call, e.g. an outer progress bar's ``update``; it adds
    up to the number of prompts generated. ``on_cache_hits(n)`` is called once with the number of ``prompts``
    (duplicates counted) whose answer came from ``cache``. Float rounding differences between batch layouts can,
    rarely, flip a near-tied greedy choice.
    """
    allowed = _check(lm, prompts, max_new_tokens, batch_size, allowed_token_ids)
    prompts = list(prompts)
    keys, done, todo = cached_generations(lm, prompts, max_new_tokens, allowed, number_shape, cache)
    if on_cache_hits is not None:
        on_cache_hits(sum(p in done for p in prompts))
    lengths = {p: len(lm.tokenizer(p, add_special_tokens=False).input_ids) for p in todo}
    todo.sort(key=lambda p: -lengths[p])  # longest first: similar lengths share a batch, memory peaks early
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}]"  # n: fractional
    with tqdm(total=len(todo), desc="generating", unit="prompt", disable=not show_progress,
              bar_format=bar_format) as bar:

        def advance(n: float) -> None:
            bar.update(n)
            if progress is not None:
                progress(n)

        start = 0
        while start < len(todo):
            rows = batch_rows(lm, lengths[todo[start]], max_new_tokens, batch_size or MAX_GENERATE_ROWS)
            batch = todo[start : start + rows]
            texts = _generate_batch(lm, batch, max_new_tokens, allowed, number_shape,
                                    advance if show_progress or progress is not None else None)
            done.update(zip(batch, texts))
            if cache is not None:
                cache.put_many({keys[p]: t for p, t in zip(batch, texts)})
            start += len(batch)
            bar.n = start  # exact, whatever the float steps summed to
            bar.refresh()
    return [done[p] for p in prompts]
