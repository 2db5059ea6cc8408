"""Batched greedy generation from already-templated prompts, optionally constrained to a token set and cached.

Greedy decoding makes outputs a pure function of (model, prompt, settings), which is what lets a content-addressed
cache (``recllm.llm.cache.DiskCache``) resume interrupted jobs and skip repeated prompts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from recllm.llm.backbone import CausalLM
from recllm.llm.number_shape import NumberShape, NumberShapeProcessor

GENERATE_VERSION = 1  # bump when the decoding procedure changes, so cached outputs are not reused


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


def _check(lm: CausalLM, prompts: Sequence[str], max_new_tokens: int, batch_size: int,
           allowed_token_ids: Sequence[int] | None) -> list[int] | None:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of strings, not one string")
    if max_new_tokens < 1 or batch_size < 1:
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
                    number_shape: NumberShape | None = None) -> list[str]:
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
    with torch.no_grad():
        out = lm.model.generate(
            input_ids=enc.input_ids, attention_mask=enc.attention_mask, generation_config=config,
            logits_processor=processors,
        )
    new_tokens = out[:, enc.input_ids.shape[1] :]
    return tok.batch_decode(new_tokens, skip_special_tokens=True)


def generate(
    lm: CausalLM,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    allowed_token_ids: Sequence[int] | None = None,
    cache: Any = None,
    show_progress: bool = True,
    number_shape: NumberShape | None = None,
) -> list[str]:
    """Greedy completions of ``prompts`` (already chat-templated; see ``chat_prompt``), special tokens removed.

    Stops at EOS or after ``max_new_tokens``. ``allowed_token_ids`` restricts every new token to that set plus
    EOS (e.g. the digit tokens for numeric answers); ``number_shape`` (with ``allowed_token_ids``, the number
    tokens) further keeps every answer a number of that shape (sign, integer digits, decimals). With ``cache`` (a ``DiskCache``), finished prompts are stored
    batch by batch and reused; duplicate prompts are generated once. Prompts are batched by length with left
    padding; float rounding differences between batch layouts can, rarely, flip a near-tied greedy choice.
    """
    allowed = _check(lm, prompts, max_new_tokens, batch_size, allowed_token_ids)
    prompts = list(prompts)
    unique = list(dict.fromkeys(prompts))
    params = {"task": "generate", "version": GENERATE_VERSION, "model": lm.fingerprint,
              "max_new_tokens": max_new_tokens, "allowed_token_ids": allowed}
    if number_shape is not None:
        if allowed is None:
            raise ValueError("number_shape needs allowed_token_ids (the number tokens it chooses among)")
        params["number_shape"] = dataclasses.asdict(number_shape)
    keys = {p: cache.key(**params, prompt=p) for p in unique} if cache is not None else {}
    done: dict[str, str] = {}
    if cache is not None:
        found = cache.get_many(list(keys.values()))
        done = {p: found[k] for p, k in keys.items() if k in found}
    todo = [p for p in unique if p not in done]
    lengths = {p: len(lm.tokenizer(p, add_special_tokens=False).input_ids) for p in todo}
    todo.sort(key=lambda p: -lengths[p])  # longest first: similar lengths share a batch, memory peaks early
    with tqdm(total=len(todo), desc="generating", unit="prompt", disable=not show_progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            texts = _generate_batch(lm, batch, max_new_tokens, allowed, number_shape)
            done.update(zip(batch, texts))
            if cache is not None:
                cache.put_many({keys[p]: t for p, t in zip(batch, texts)})
            bar.update(len(batch))
    return [done[p] for p in prompts]
