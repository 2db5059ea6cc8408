"""LLM summaries of users' long histories: hierarchical, recurrent, or none (LLM-TRSR, section 3).

* ``hierarchical``: summarise every block on its own, then summarise the block summaries (one merge per user;
  a user with one block keeps that block's summary).
* ``recurrent``: summary_1 = LLM(block_1); summary_t = LLM(summary_{t-1}, block_t).
* ``none``: no summary (the recommender sees the recent items only, as TALLRec does).

Work is batched across users: every user's block-k prompt goes into one batched ``recllm.llm.generate`` call.
Each generation is stored in a :class:`~recllm.llm.cache.DiskCache` under a key made of the model fingerprint, the
prompt-template fingerprint, the generation parameters and the prompt, and entries are committed chunk by chunk,
so an interrupted run resumes where it stopped and identical blocks (the same user at train, valid and test time)
are generated once. ``engine="ray"`` runs the same chunks on a Ray actor pool
(:func:`recllm.distributed.ray_jobs.generate_chunks_ray`) under the same cache keys: a summary made on Ray is reused
by a local run and vice versa.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recllm.llm import CausalLM, chat_prompt, generate
from recllm.llm.cache import DiskCache
from recllm.trsr import prompts
from recllm.trsr.segment import SegmentConfig, segment_history

__all__ = ["MODES", "SummarizerConfig", "Summaries", "recurrent_update", "summarize_histories"]

MODES = ("hierarchical", "recurrent", "none")


@dataclass(frozen=True)
class SummarizerConfig:
    """How summaries are made: ``mode``, generation length and batch, segmentation, prompt style."""

    mode: str = "hierarchical"
    max_new_tokens: int = 64
    batch_size: int = 8
    chunk_size: int = 32  # prompts generated (and committed to the cache) per chunk
    guarded: bool = False
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"SummarizerConfig.mode must be one of {MODES}, got {self.mode!r}")
        for name in ("max_new_tokens", "batch_size", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SummarizerConfig.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.segment, SegmentConfig):
            raise ValueError(f"SummarizerConfig.segment must be a SegmentConfig, got {type(self.segment).__name__}")


@dataclass
class Summaries:
    """Summaries in input order (``None`` in mode ``none``), the intermediate ones, and what they cost.

    ``model_seconds`` is the generation time of every distinct prompt these summaries needed, whether it ran now or
    was served from the cache (the cache stores each prompt's share of its chunk's time), so throughput figures
    survive a resumed or fully cached run. ``seconds`` is this call's wall time.
    """

    texts: list[str | None]
    steps: list[list[str]]  # per user: block summaries (hierarchical) or running summaries (recurrent)
    prompts: int  # distinct prompts needed
    generated: int  # prompts run through the model in this call (cache misses)
    model_seconds: float
    seconds: float

    @property
    def users_per_second(self) -> float:
        """Users summarised per second of model time (``nan`` when nothing needed the model)."""
        return len(self.texts) / self.model_seconds if self.model_seconds > 0 else float("nan")


_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}]"  # n is fractional


def _clean(text: str) -> str:
    return " ".join(text.split())


class _CachedGenerator:
    """Generates user messages through the chat template, deduplicated and cached, in committed chunks."""

    def __init__(self, lm: CausalLM, config: SummarizerConfig, cache: DiskCache | None,
                 show_progress: bool, engine: str = "local", ray_options: Any = None) -> None:
        self.lm, self.config, self.cache, self.show_progress = lm, config, cache, show_progress
        self.engine, self.ray_options, self._shipped = engine, ray_options, None
        self.generated = 0
        self.seconds: dict[str, float] = {}  # model seconds per distinct message
        self._params = {"max_new_tokens": config.max_new_tokens, "system": prompts.SYSTEM_SUMMARY,
                        "decoding": "greedy"}
        self._fingerprint = lm.fingerprint
        self._templates = prompts.template_fingerprint()

    def _key(self, message: str) -> str:
        return DiskCache.key(task="trsr-summary", model=self._fingerprint, template=self._templates,
                             params=self._params, input=message)

    def __call__(self, messages: Sequence[str], desc: str) -> list[str]:
        unique = list(dict.fromkeys(messages))
        keys = {m: self._key(m) for m in unique}
        found = self.cache.get_many(keys.values()) if self.cache is not None else {}
        out: dict[str, str] = {}
        for m, k in keys.items():
            if k in found:
                out[m] = found[k]["text"]
                self.seconds[m] = float(found[k]["seconds"])
        todo = [m for m in unique if m not in out]
        # longest first: similar lengths share a batch (less padding) and the slowest chunk shows up early
        todo.sort(key=len, reverse=True)
        if self.engine == "ray":
            self._on_ray(todo, keys, out, desc)
            return [out[m] for m in messages]
        bar = None
        if self.show_progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=desc, unit="prompt", bar_format=_BAR)
        for start in range(0, len(todo), self.config.chunk_size):
            chunk = todo[start:start + self.config.chunk_size]
            texts = [chat_prompt(self.lm, m, system=prompts.SYSTEM_SUMMARY) for m in chunk]
            began = time.perf_counter()
            outputs = generate(self.lm, texts, max_new_tokens=self.config.max_new_tokens,
                               batch_size=self.config.batch_size, show_progress=False,
                               progress=bar.update if bar is not None else None)  # moves as tokens are decoded
            share = (time.perf_counter() - began) / len(chunk)
            made = {m: _clean(o) for m, o in zip(chunk, outputs)}
            if self.cache is not None:
                self.cache.put_many({keys[m]: {"text": v, "seconds": share} for m, v in made.items()})
            out.update(made)
            self.seconds.update({m: share for m in chunk})
            self.generated += len(chunk)
            if bar is not None:
                bar.n = start + len(chunk)  # exact, whatever the fractional steps summed to
                bar.refresh()
        if bar is not None:
            bar.close()
        return [out[m] for m in messages]

    def _on_ray(self, todo: list[str], keys: dict[str, str], out: dict[str, str], desc: str) -> None:
        """The chunks of ``todo`` generated on a Ray actor pool, each committed to the cache as it finishes."""
        if not todo:
            return
        from recllm.distributed.ray_jobs import RayOptions, ensure_ray, generate_chunks_ray, ship_model

        options = self.ray_options or RayOptions()
        ensure_ray(options)
        if self._shipped is None:  # the weights go to Ray's object store once per summarisation
            self._shipped = ship_model(self.lm)
        size = self.config.chunk_size
        chunks = [todo[s:s + size] for s in range(0, len(todo), size)]

        def commit(c: int, outputs: list[str], seconds: list[float]) -> None:
            made = {m: _clean(o) for m, o in zip(chunks[c], outputs)}
            if self.cache is not None:
                self.cache.put_many({keys[m]: {"text": made[m], "seconds": sec}
                                     for m, sec in zip(chunks[c], seconds)})
            out.update(made)
            self.seconds.update(dict(zip(chunks[c], seconds)))
            self.generated += len(made)

        prompts_ = [[chat_prompt(self.lm, m, system=prompts.SYSTEM_SUMMARY) for m in chunk] for chunk in chunks]
        generate_chunks_ray(self._shipped, prompts_, max_new_tokens=self.config.max_new_tokens,
                            batch_size=self.config.batch_size, show_progress=self.show_progress, options=options,
                            on_chunk=commit)


def summarize_histories(
    lm: CausalLM,
    histories: Sequence[Sequence[int] | np.ndarray],
    item_texts: Sequence[str],
    config: SummarizerConfig = SummarizerConfig(),
    cache: DiskCache | None = None,
    show_progress: bool = True,
    engine: str = "local",
    ray_options: Any = None,
) -> Summaries:
    """Summarise each history (item indices, oldest first) with ``lm``; ``item_texts`` are indexed by item.

    ``item_texts`` should already fit the per-item token budget (:func:`recllm.trsr.segment.render_item_texts`).
    An empty history gets the empty summary. ``engine="ray"`` generates on a Ray actor pool (``ray_options``: a
    :class:`recllm.distributed.ray_jobs.RayOptions`; the ``distributed`` extra) with the same cache keys and outputs.
    """
    if engine != "local":
        from recllm.distributed import check_engine

        check_engine(engine)
    start = time.perf_counter()
    n = len(histories)
    if config.mode == "none":
        return Summaries([None] * n, [[] for _ in range(n)], 0, 0, 0.0, time.perf_counter() - start)
    blocks = [[[item_texts[int(i)] for i in b] for b in segment_history(h, config.segment)] for h in histories]
    run = _CachedGenerator(lm, config, cache, show_progress, engine, ray_options)
    if config.mode == "hierarchical":
        texts, steps = _hierarchical(run, blocks, config.guarded)
    else:
        texts, steps = _recurrent(run, blocks, config.guarded)
    return Summaries(texts, steps, len(run.seconds), run.generated, float(sum(run.seconds.values())),
                     time.perf_counter() - start)


def _hierarchical(run: _CachedGenerator, blocks: list[list[list[str]]], guarded: bool
                  ) -> tuple[list[str | None], list[list[str]]]:
    flat = [(u, b) for u, user_blocks in enumerate(blocks) for b in range(len(user_blocks))]
    outputs = run([prompts.block_summary_message(blocks[u][b], guarded) for u, b in flat], "block summaries")
    steps: list[list[str]] = [[] for _ in blocks]
    for (u, _), text in zip(flat, outputs):
        steps[u].append(text)
    merge_users = [u for u, s in enumerate(steps) if len(s) > 1]
    merged = run([prompts.merge_summary_message(steps[u]) for u in merge_users], "merged summaries")
    texts: list[str | None] = [s[0] if len(s) == 1 else "" for s in steps]
    for u, text in zip(merge_users, merged):
        texts[u] = text
    return texts, steps


def _recurrent(run: _CachedGenerator, blocks: list[list[list[str]]], guarded: bool
               ) -> tuple[list[str | None], list[list[str]]]:
    steps: list[list[str]] = [[] for _ in blocks]
    depth = max((len(b) for b in blocks), default=0)
    for k in range(depth):
        users = [u for u, b in enumerate(blocks) if len(b) > k]
        if k == 0:
            messages = [prompts.block_summary_message(blocks[u][0], guarded) for u in users]
        else:
            messages = [prompts.recurrent_message(steps[u][-1], blocks[u][k], guarded) for u in users]
        for u, text in zip(users, run(messages, f"recurrent step {k + 1}/{depth}")):
            steps[u].append(text)
    texts: list[str | None] = [s[-1] if s else "" for s in steps]
    return texts, steps


def recurrent_update(lm: CausalLM, previous: str, block_texts: Sequence[str],
                     config: SummarizerConfig = SummarizerConfig(), cache: DiskCache | None = None) -> str:
    """One step of the recurrent summariser: the summary after ``block_texts`` given the ``previous`` one (the
    first block's summary when ``previous`` is empty). Same prompts and cache keys as :func:`summarize_histories`,
    so a service can keep a summary current block by block without summarising the whole history again."""
    run = _CachedGenerator(lm, config, cache, show_progress=False)
    texts = list(block_texts)
    message = (prompts.recurrent_message(previous, texts, config.guarded) if previous.strip()
               else prompts.block_summary_message(texts, config.guarded))
    return run([message], "recurrent step")[0]
