"""SmolLM2-135M through recllm.llm: prefill/generation throughput against the measured matmul FLOP/s, and
shared-prefix candidate scoring (50 candidates after a 256-token prompt) against 50 full sequences.

``run() -> str`` returns a markdown section for ``recllm bench foundation`` (alone: ``--only llm``). The texts are
synthetic film lists built in code (throughput and path agreement do not depend on the content); every figure below
is measured when the section runs.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from recllm.eval.report import format_table

PREFIX_TOKENS, N_CANDIDATES, GEN_TOKENS, PREFILL_TOKENS, SEED = 256, 50, 32, 256, 0
FILMS = [
    "Alien (1979)", "Blade Runner (1982)", "Solaris (1972)", "Toy Story (1995)", "Heat (1995)", "Fargo (1996)",
    "Casablanca (1942)", "Vertigo (1958)", "Amélie (2001)", "Spirited Away (2001)", "The Matrix (1999)",
    "Jaws (1975)", "Psycho (1960)", "Rocky (1976)", "Memento (2000)", "Arrival (2016)", "Moon (2009)",
    "Gattaca (1997)", "Brazil (1985)", "Paris, Texas (1984)", "Stalker (1979)", "Ran (1985)", "Up (2009)",
    "Seven Samurai (1954)", "The Godfather (1972)", "Goodfellas (1990)", "Titanic (1997)", "Heat (1995)",
]
GENRES = ["science fiction", "drama", "comedy", "thriller", "animation", "romance", "crime", "war", "horror"]


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _text_tokens(lm, rng: np.random.Generator, n_tokens: int) -> list[int]:
    words = []
    while True:
        words.append(f"{FILMS[rng.integers(len(FILMS))]}: {GENRES[rng.integers(len(GENRES))]}, rated "
                     f"{rng.integers(1, 6)}/5.")
        ids = lm.tokenizer(" ".join(words), add_special_tokens=False).input_ids
        if len(ids) >= n_tokens:
            return ids[:n_tokens]


def scoring_task(lm, seed: int = SEED) -> tuple[str, list[str]]:
    """A 256-token prefix (system + a user's history, ending at 'Film:') and 50 candidates closing the prompt."""
    rng = np.random.default_rng(seed)
    head = ("<|im_start|>system\nYou are a film recommender. Answer Yes or No.<|im_end|>\n<|im_start|>user\n"
            "The user rated, oldest first:")
    tail = "\nWill the user like the next film? Film:"
    fixed = len(lm.tokenizer(head + tail, add_special_tokens=False).input_ids)
    history = lm.tokenizer.decode(_text_tokens(lm, rng, PREFIX_TOKENS - fixed))
    prefix = head + " " + history.strip() + tail
    end = "<|im_end|>\n<|im_start|>assistant\n"
    candidates = []
    for _ in range(N_CANDIDATES):
        genres = ", ".join(rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False))
        candidates.append(f" {FILMS[rng.integers(len(FILMS))]} ({genres}){end}")
    return prefix, candidates


def flops_per_token(lm, context: float) -> float:
    """2 * N (multiply-adds of every weight; tied embeddings count once, as the LM head) + attention
    4 * n_layers * context * d_model (QK^T and AV over ``context`` earlier tokens)."""
    n_params = sum(p.numel() for p in lm.model.parameters())
    cfg = lm.model.config
    return 2.0 * n_params + 4.0 * cfg.num_hidden_layers * context * cfg.hidden_size


def throughput_rows(lm, matmul: float, repeats: int) -> list[dict[str, str]]:
    rng = np.random.default_rng(SEED)
    rows = []
    for batch in (1, 8):
        ids = torch.tensor([_text_tokens(lm, rng, PREFILL_TOKENS) for _ in range(batch)])
        with torch.no_grad():
            seconds, _ = _timed(lambda: lm.model(input_ids=ids), repeats)  # full logits, as scoring needs
        tps = batch * PREFILL_TOKENS / seconds
        rows.append(_row(lm, "prefill", batch, PREFILL_TOKENS, seconds, tps, flops_per_token(lm, PREFILL_TOKENS / 2),
                         matmul))
    from transformers import GenerationConfig

    prompt_len = 32
    config = GenerationConfig(max_new_tokens=GEN_TOKENS, min_new_tokens=GEN_TOKENS, do_sample=False,
                              pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=lm.tokenizer.eos_token_id)
    for batch in (1, 8):
        ids = torch.tensor([_text_tokens(lm, rng, prompt_len) for _ in range(batch)])
        with torch.no_grad():
            seconds, out = _timed(lambda: lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                            generation_config=config), repeats)
        assert out.shape[1] == prompt_len + GEN_TOKENS
        tps = batch * GEN_TOKENS / seconds  # includes the (short) prefill of the 32-token prompts
        rows.append(_row(lm, "generation", batch, GEN_TOKENS, seconds, tps,
                         flops_per_token(lm, prompt_len + GEN_TOKENS / 2), matmul))
    return rows


def _row(lm, kind, batch, tokens, seconds, tps, fpt, matmul) -> dict[str, str]:
    return {"dtype": lm.dtype, "phase": kind, "batch": str(batch), "tokens/seq": str(tokens),
            "seconds": f"{seconds:.2f}", "tokens/s": f"{tps:,.0f}", "GFLOP/s": f"{tps * fpt / 1e9:.1f}",
            "of matmul peak": f"{tps * fpt / matmul:.1%}"}


def p_yes(lm, prefix: str, candidates: list[str], shared: bool) -> tuple[float, np.ndarray]:
    from recllm.llm import next_token_logprobs, yes_probability

    yes_no = lm.tokenizer.convert_tokens_to_ids(["Yes", "No"])
    start = time.perf_counter()
    logprobs = next_token_logprobs(lm, prefix, candidates, yes_no, shared_prefix=shared, batch_size=64)
    return time.perf_counter() - start, yes_probability(logprobs)


def scoring_section(lms: dict, repeats: int, matmul: dict) -> str:
    """Shared prefix vs full sequences per dtype; timings are medians of ``repeats`` alternating runs (so a change
    in the machine's load hits both paths alike)."""
    prefix, candidates = scoring_task(lms["float32"])
    tok = lms["float32"].tokenizer
    n_prefix = len(tok(prefix, add_special_tokens=False).input_ids)
    cont_lens = [len(tok(c, add_special_tokens=False).input_ids) for c in candidates]
    for lm in lms.values():  # warm-up: first calls pay one-off allocation costs
        p_yes(lm, prefix, candidates[:2], shared=True)
    times: dict[tuple[str, bool], list[float]] = {}
    probs: dict[tuple[str, bool], np.ndarray] = {}
    for d, lm in lms.items():
        for _ in range(repeats):
            for shared in (True, False):
                seconds, probs[(d, shared)] = p_yes(lm, prefix, candidates, shared)
                times.setdefault((d, shared), []).append(seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    reference = probs[("float32", False)]
    lm32 = lms["float32"]
    flops = {True: n_prefix * flops_per_token(lm32, n_prefix / 2)
                   + sum(c * flops_per_token(lm32, n_prefix + c / 2) for c in cont_lens),
             False: sum((n_prefix + c) * flops_per_token(lm32, (n_prefix + c) / 2) for c in cont_lens)}
    rows = []
    for (dtype, shared), p in probs.items():
        rows.append({
            "dtype": dtype, "path": "shared prefix (KV cache)" if shared else f"{N_CANDIDATES} full sequences",
            "seconds": f"{median[(dtype, shared)]:.2f}",
            "speedup vs full": f"{median[(dtype, False)] / median[(dtype, shared)]:.1f}x",
            "candidates/s": f"{N_CANDIDATES / median[(dtype, shared)]:.1f}",
            "of matmul peak": f"{flops[shared] / median[(dtype, shared)] / matmul[dtype]:.1%}",
            "max abs dP(Yes) vs same-dtype full": f"{np.abs(p - probs[(dtype, False)]).max():.2e}",
            "max abs dP(Yes) vs float32 full": f"{np.abs(p - reference).max():.2e}",
        })
    speedup32 = median[("float32", False)] / median[("float32", True)]
    delta32 = np.abs(probs[("float32", True)] - reference).max()
    return "\n".join([
        "### Candidate scoring: shared prefix vs full sequences",
        "",
        f"{N_CANDIDATES} candidates ({min(cont_lens)}-{max(cont_lens)} tokens each, ending in "
        f"`<|im_end|>\\n<|im_start|>assistant\\n`) after a {n_prefix}-token prompt; P(Yes) = softmax over the "
        "'Yes' and 'No' next-token logits. `next_token_logprobs(..., shared_prefix=True|False, batch_size=64)`; "
        "'of matmul peak' counts the FLOPs each path executes (the formula above; the shared path runs the prefix "
        "once), against the peak of its precision; "
        f"median of {repeats} alternating runs after a warm-up.",
        "",
        format_table(rows, list(rows[0])),
        "",
        f"float32 shared-prefix speedup {speedup32:.1f}x ({'meets' if speedup32 >= 5 else 'MISSES'} the >= 5x "
        f"target), max |dP(Yes)| {delta32:.1e} ({'within' if delta32 <= 1e-4 else 'OUTSIDE'} 1e-4).",
    ])


def run(repeats: int = 2, parts: tuple[str, ...] = ("throughput", "scoring")) -> str:
    """Measure and return the markdown section (in the run's thread setting)."""
    import transformers

    from recllm.bench.foundation.machine import PEAK_SECONDS, PEAK_SIZE, native_dtypes, peak_flops
    from recllm.llm import cpu_model, has_amx, load_causal_lm, thread_info

    load_before = os.getloadavg()[0]
    start_all = time.perf_counter()
    lms = {"float32": load_causal_lm(device="cpu", dtype="float32")}  # converts the GGUF on first use
    start = time.perf_counter()
    load_causal_lm(device="cpu", dtype="float32")
    load_seconds = time.perf_counter() - start
    if "bfloat16" in native_dtypes():  # an emulated precision gets no table (its matmul cost is in "Machine")
        lms["bfloat16"] = load_causal_lm(device="cpu", dtype="bfloat16")
    matmul = {d: peak_flops(d) for d in lms}
    info = thread_info()
    body = [
        "## SmolLM2-135M-Instruct through recllm.llm",
        "",
        f"Machine: {cpu_model()}, {info['cores']} cores, AMX bf16: {has_amx()}, torch {torch.__version__} "
        f"({info['torch_threads']} threads), transformers {transformers.__version__}, Python "
        f"{platform.python_version()}. Reload of the converted folder (imports warm): {load_seconds:.2f} s.",
        "",
        f"Measured matmul peak ({PEAK_SIZE} x {PEAK_SIZE} square matmul, {PEAK_SECONDS:.0f} s), per native precision: "
        + ", ".join(f"{d} {v / 1e9:.1f} GFLOP/s" for d, v in matmul.items()) + ".",
    ]
    if "throughput" in parts:
        rows = [row for d, lm in lms.items() for row in throughput_rows(lm, matmul[d], repeats)]
        cfg = lms["float32"].model.config
        body += [
            "",
            "### Throughput",
            "",
            "FLOPs per token = 2 N + 4 L c d with N = "
            f"{sum(p.numel() for p in lms['float32'].model.parameters()) / 1e6:.1f}M parameters (tied embeddings "
            f"count once, as the LM head), L = {cfg.num_hidden_layers} layers, d = {cfg.hidden_size}, c = mean "
            f"attended context ({PREFILL_TOKENS // 2} for a {PREFILL_TOKENS}-token prefill; prompt + "
            f"{GEN_TOKENS // 2} for generation). Prefill = one forward over {PREFILL_TOKENS}-token sequences with "
            f"logits at every position. Generation = greedy `generate` of exactly {GEN_TOKENS} new tokens after a "
            f"32-token prompt (KV cache), timing including that prompt's prefill. Median of {repeats} runs after "
            "a warm-up.",
            "",
            format_table(rows, list(rows[0])),
        ]
    if "scoring" in parts:
        body += ["", scoring_section(lms, repeats, matmul)]
    body += [
        "",
        f"1-minute load average {load_before:.2f} before and {os.getloadavg()[0]:.2f} after, on "
        f"{info['cores']} cores (the CPU is shared: other processes lower every figure, and more so with more "
        f"threads). _Section measured in {time.perf_counter() - start_all:.0f} s._",
    ]
    return "\n".join(body)
