"""LEARN's item content as a benchmark dimension: which frozen encoder, and what embedding a catalogue costs.

Each (data set, encoder) gets one timing record: the encoder's loading and the embedding of the whole catalogue,
computed fresh (the disk cache is written, not read) in ``recllm.llm``'s reproducible precision, with the CPU, the
threads and the precision it ran in. Records live beside the report in ``<report>.content.jsonl``, a
:class:`recllm.bench.runs.RunStore` whose code identity is the embedding code only (``recllm.llm`` and
``recllm.learn.encoder``): a change elsewhere does not re-time a catalogue (SmolLM2 on a 10k-item catalogue takes
about an hour on an AVX2-only CPU). Quick mode times a seeded sample of texts instead and extrapolates; the report
says which.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.runs import RunStore, required_fields, run_key

# The encoders the benchmark compares (recllm.learn.encoder aliases -> display names); the first is LEARN's default.
ENCODERS = {"smollm2": "SmolLM2-135M", "minilm": "all-MiniLM-L6-v2"}
DEFAULT_ENCODER = "smollm2"
QUICK_SAMPLE = 32  # texts timed in quick mode and by --plan (one batch), extrapolated to the catalogue
COMPUTE_SAMPLE = 32  # texts whose FLOPs are counted (an untimed pass), scaled to the catalogue by padded tokens
TIMING_PACKAGES = ("recllm.llm", "recllm.learn.encoder")  # the code that decides an embedding's cost


@dataclass
class ContentTiming:
    """What embedding one catalogue with one encoder cost on one machine."""

    dataset: str
    encoder: str
    items: int  # catalogue size
    dim: int  # raw embedding width
    load_seconds: float  # loading the encoder
    encode_seconds: float  # embedding the whole catalogue (extrapolated from ``sample`` texts when sample > 0)
    sample: int  # 0: the whole catalogue was embedded and timed; else how many texts were
    precision: str  # the precision it ran in, with the reason
    threads: int
    cpu: str
    measured: str  # UTC date
    load_average: str = "not recorded"  # the 1-minute load average before / after the embedding
    # the embedding's FLOP/s (FLOPs counted on COMPUTE_SAMPLE texts, scaled like the time) and the matmul peak of its
    # precision at its threads, measured in the same run; nan in records made before they were measured
    gflops: float = float("nan")
    peak_gflops: float = float("nan")

    @property
    def items_per_second(self) -> float:
        return self.items / self.encode_seconds if self.encode_seconds > 0 else float("nan")


def timing_store(runs_path: Path) -> RunStore:
    """The store of timing records beside ``<report>.runs.jsonl``: ``<report>.content.jsonl``."""
    return RunStore(runs_path.with_name(runs_path.name.replace(".runs.jsonl", ".content.jsonl")),
                    packages=TIMING_PACKAGES)


def timing_key(data: str, dataset: str, encoder: str, sample: int) -> str:
    """The record's key: data sha256, data set, encoder, precision and how many texts were timed."""
    from recllm.llm.precision import REPRODUCIBLE_DTYPE

    return run_key(kind="content-timing", data=data, dataset=dataset, encoder=encoder, dtype=REPRODUCIBLE_DTYPE,
                   sample=sample)


def stored_timing(store: RunStore, key: str) -> ContentTiming | None:
    row = store.get(key, required_fields(ContentTiming))
    if row is None:
        return None
    return ContentTiming(**{k: v for k, v in row.items() if k in ContentTiming.__dataclass_fields__})


def measure_content(dataset: Any, encoder: str, sample: int = 0, seed: int = 0,
                    show_progress: bool = False) -> tuple[np.ndarray | None, ContentTiming]:
    """Time ``encoder`` on ``dataset``'s catalogue: loading, then embedding every text fresh (``sample`` = 0; the
    embeddings are returned and land in the disk cache) or ``sample`` seeded texts (None returned; the catalogue
    time extrapolated linearly)."""
    import torch

    from recllm.hardware import cpu_model, load_average
    from recllm.learn.encoder import catalogue_texts, content_config, load_content_model, raw_item_embeddings
    from recllm.llm.precision import describe_precision

    config = content_config(encoder)
    texts = catalogue_texts(dataset)
    timed = texts
    if 0 < sample < len(texts):
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), sample, replace=False))
        timed = [texts[i] for i in pick]
    load_before = load_average()
    start = time.perf_counter()
    model = load_content_model(config)
    loaded = time.perf_counter()
    emb = raw_item_embeddings(timed, config, model=model, fresh=True, cache=None if timed is texts else False,
                              show_progress=show_progress)
    seconds = time.perf_counter() - loaded
    tokenizer = getattr(model, "tokenizer", None)
    if timed is not texts:  # scaled by the padded tokens each set fills in the encoder's batches
        seconds *= padded_tokens(tokenizer, texts, config) / max(padded_tokens(tokenizer, timed, config), 1)
    flops = catalogue_flops(texts, config, model, tokenizer, seed)
    from recllm.llm.hardware import measure_matmul_flops
    from recllm.utils import resolve_device

    peak = measure_matmul_flops(config.dtype, seconds=1.0, device=resolve_device(config.device))
    timing = ContentTiming(
        dataset=dataset.name, encoder=encoder, items=len(texts), dim=int(emb.shape[1]),
        load_seconds=loaded - start, encode_seconds=seconds, sample=0 if timed is texts else len(timed),
        precision=f"{config.dtype} (auto here: {describe_precision('auto', config.device)})",
        threads=torch.get_num_threads(), cpu=cpu_model(),
        measured=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        load_average=f"{load_before:.1f} / {load_average():.1f}",
        gflops=flops / seconds / 1e9 if seconds > 0 else float("nan"), peak_gflops=peak / 1e9)
    if show_progress:
        print(f"[bench learn] {dataset.name}: {ENCODERS.get(encoder, encoder)} embeds {len(texts)} item texts in "
              f"{seconds:.1f} s{' (extrapolated from ' + str(len(timed)) + ' texts)' if timing.sample else ''} "
              f"+ {timing.load_seconds:.1f} s loading", flush=True)
    return (emb if timed is texts else None), timing


def catalogue_flops(texts: list[str], config: Any, model: Any, tokenizer: Any, seed: int = 0) -> float:
    """The FLOPs of embedding ``texts``: counted (``recllm.llm.hardware.count_flops``) on :data:`COMPUTE_SAMPLE`
    seeded texts, in a pass of their own, and scaled by the padded tokens of the whole set over the sample's."""
    from recllm.learn.encoder import raw_item_embeddings
    from recllm.llm.hardware import count_flops

    sample = texts
    if COMPUTE_SAMPLE < len(texts):
        pick = np.sort(np.random.default_rng(seed + 1).choice(len(texts), COMPUTE_SAMPLE, replace=False))
        sample = [texts[i] for i in pick]
    counted = count_flops(lambda: raw_item_embeddings(sample, config, model=model, fresh=True, cache=False,
                                                      show_progress=False))[1]
    return counted * padded_tokens(tokenizer, texts, config) / max(padded_tokens(tokenizer, sample, config), 1)


def padded_tokens(tokenizer: Any, texts: list[str], config: Any) -> int:
    """Tokens (padding included) the encoder processes for ``texts`` as ``recllm.llm.embed_texts`` batches them
    (longest text first, ``config.batch_size`` per batch, at most ``config.max_length`` each); without a tokenizer,
    characters stand in for tokens."""
    ordered = sorted(set(texts), key=len, reverse=True)
    if tokenizer is not None:
        ids = tokenizer(ordered, truncation=True, max_length=config.max_length)["input_ids"]
        lengths = [len(i) for i in ids]
    else:
        lengths = [len(t) for t in ordered]
    return sum(len(lengths[i:i + config.batch_size]) * max(lengths[i:i + config.batch_size])
               for i in range(0, len(lengths), config.batch_size))


def catalogue_content(dataset: Any, encoder: str, store: RunStore, data: str, quick: bool,
                      show_progress: bool = False) -> tuple[np.ndarray, ContentTiming]:
    """The raw content embeddings of ``dataset`` by ``encoder`` and its timing record (measured once and stored:
    the whole catalogue in full mode, :data:`QUICK_SAMPLE` texts in quick mode)."""
    from recllm.bench.learn import run

    sample = QUICK_SAMPLE if quick else 0
    key = timing_key(data, dataset.name, encoder, sample)
    timing = stored_timing(store, key)
    emb = None
    if timing is None:
        emb, timing = measure_content(dataset, encoder, sample, show_progress=show_progress)
        store.put(key, asdict(timing))
    if emb is None:
        emb, _ = run.content_for(dataset, show_progress, encoder)  # the disk cache, or computed now
    return emb, timing
