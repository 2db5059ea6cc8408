"""Grouped SFT against per-pair SFT: labelled answers per second with 21 candidates behind one ~280-token prefix.

``run() -> str`` returns a markdown section for ``recllm bench foundation`` (alone: ``--only grouped_sft``). Each group
is one MovieLens-100K user as the LLM-TRSR ranker sees them: the ranker prompt (``recllm.trsr.ranker.prompt_parts``:
instruction, a preference summary, the most recent films) up to the candidate, then 21 candidates (the film the user
rated next, answer "Yes", and 20 films they never rated, "No"), as in the paper's 1 + 20 protocol. The summary is
templated from the user's ratings (genres and mean rating) instead of written by the LLM summariser, since only training
is timed. Both modes train the same pairs for one epoch through ``recllm.llm.sft_train`` with a fresh SmolLM2 and LoRA
r=8: per pair (``(prompt, answer)`` examples, 7 per step) and grouped (``GroupedExample``, one group of 21 per step).
The first step of each run is a warm-up and is not timed. bfloat16 autocast is measured only on a CPU with native
bfloat16 matmuls (``recllm.llm.precision.has_bf16_matmul``); elsewhere it is emulated and far slower than float32.
"""

from __future__ import annotations

import os

import numpy as np

SEED, N_GROUPS, N_CANDIDATES, PAIR_BATCH, TARGET_PREFIX_TOKENS = 0, 4, 21, 7, 280


def _film(titles: dict, genres: dict, item: int) -> str:
    return f"{titles[item]} ({genres[item]})"


def user_groups(lm, n_groups: int = N_GROUPS, n_candidates: int = N_CANDIDATES, seed: int = SEED) -> list:
    """One ``GroupedExample`` per sampled MovieLens-100K user: the TRSR ranker prefix, the user's next film (Yes)
    and ``n_candidates - 1`` unrated films (No), in a seeded random order. Recent films are added to the prompt
    until its prefix reaches about 280 tokens."""
    from recllm.data import load
    from recllm.llm.sft_grouped import GroupedExample
    from recllm.trsr import prompts
    from recllm.trsr.ranker import RankerConfig, RankQuery, prompt_parts

    data = load("ml-100k")
    titles = dict(zip(data.items["item_id"], data.items["title"]))
    genres = dict(zip(data.items["item_id"], data.items["genres"].str.replace("|", ", ")))
    catalogue = np.array(sorted(titles))
    inter = data.interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    rng = np.random.default_rng(seed)
    groups = []
    for user in rng.permutation(inter["user_id"].unique()):
        rows = inter[inter["user_id"] == user]
        if len(rows) < 40:
            continue
        cut = int(rng.integers(30, len(rows)))
        history, target = rows.iloc[:cut], rows.iloc[cut]["item_id"]
        top = history["item_id"].map(lambda i: genres[i].split(", ")[0]).value_counts().index[:3]
        summary = (f"The user mostly watches {', '.join(top)} films and rates them "
                   f"{history['rating'].mean():.1f} out of 5 on average.")
        recent: list[str] = []
        for n_recent in range(1, 30):
            recent = [_film(titles, genres, i) for i in history["item_id"].iloc[-n_recent:]]
            prefix, suffix = prompt_parts(lm, RankQuery(summary, tuple(recent)), RankerConfig(n_recent=n_recent))
            if len(lm.tokenizer(prefix, add_special_tokens=False).input_ids) >= TARGET_PREFIX_TOKENS:
                break
        unseen = np.setdiff1d(catalogue, rows["item_id"].to_numpy())
        negatives = rng.choice(unseen, n_candidates - 1, replace=False).tolist()
        items = [(target, "Yes")] + [(i, "No") for i in negatives]
        order = rng.permutation(len(items))
        groups.append(GroupedExample(prefix, [(prompts.format_item(_film(titles, genres, items[k][0])) + suffix,
                                               items[k][1]) for k in order]))
        if len(groups) == n_groups:
            return groups
    raise RuntimeError(f"ml-100k gave only {len(groups)} users with 40+ ratings, fewer than {n_groups}")


def measure(groups: list, grouped: bool, bf16: bool) -> dict:
    """Train one epoch on the pairs of ``groups`` with a fresh SmolLM2 and read the timed steps from the log."""
    from recllm.llm import load_causal_lm
    from recllm.bench.foundation.sft import timed_training
    from recllm.llm.sft import SFTConfig
    from recllm.trsr.ranker import ranker_sft_config

    n_candidates = len(groups[0].continuations)
    examples = groups if grouped else [pair for g in groups for pair in g.pairs()]
    config = SFTConfig(epochs=1, learning_rate=ranker_sft_config().learning_rate,
                       batch_size=1 if grouped else PAIR_BATCH, max_length=2048,
                       seed=SEED, bf16=bf16, checkpoint_every=0, log_every=1, show_progress=False,
                       append_eos=False, warmup_ratio=0.0)
    lm = load_causal_lm(dtype="float32")
    _, steps, wall = timed_training(lm, examples, config)
    timed = steps[1:]
    if not timed:
        raise ValueError("one training step only: give more groups (--groups) so that a step remains after warm-up")
    seconds = sum(r["seconds"] for r in timed)
    answers = len(timed) * (n_candidates if grouped else PAIR_BATCH)  # every timed step is full (see run)
    return {"answers": answers, "seconds": seconds, "answers_per_s": answers / seconds,
            "tokens": sum(r["tokens"] for r in timed), "tokens_per_s": sum(r["tokens"] for r in timed) / seconds,
            "steps": len(timed), "wall": wall, "loss": float(np.mean([r["loss"] for r in timed]))}


def run(n_groups: int = N_GROUPS, n_candidates: int = N_CANDIDATES) -> str:
    """The markdown section: answers/s of grouped and per-pair SFT, per dtype, and the speed-up."""
    from recllm.bench.foundation.sft import block_linear_weights
    from recllm.eval.report import format_table
    from recllm.bench.foundation.machine import PEAK_SIZE, load_note, peak_flops
    from recllm.llm import load_causal_lm, thread_info
    from recllm.llm.precision import has_bf16_matmul
    from recllm.llm.sft import tokenize_examples
    from recllm.llm.sft_grouped import pair_features, tokenize_groups

    if n_candidates % PAIR_BATCH:
        raise ValueError(f"candidates must be a multiple of {PAIR_BATCH} (the per-pair batch), got {n_candidates}")
    load_before = os.getloadavg()
    lm = load_causal_lm(dtype="float32")
    groups = user_groups(lm, n_groups, n_candidates)
    features, _ = tokenize_groups(lm.tokenizer, groups, 2048, append_eos=False)
    pairs = [pair for g in groups for pair in g.pairs()]
    if pair_features(features) != tokenize_examples(lm.tokenizer, pairs, 2048, append_eos=False)[0]:
        raise RuntimeError("the grouped and per-pair examples tokenize differently; the comparison would be unfair")
    prefix_tokens = [f.n_prefix for f in features]
    row_tokens = [len(f.context) + len(f.answers) for f in features]
    cont_tokens = [n for f in features for n, _ in f.sizes]
    train_fpt = 4.0 * block_linear_weights(lm.model)  # forward + activation backward through the frozen weights
    del lm
    columns = ["dtype", "mode", "labelled answers/s", "tokens/s", "of matmul peak", "timed", "mean loss", "speed-up"]
    rows = []
    for dtype, bf16 in (("float32", False), ("bfloat16 autocast", True)):
        if bf16 and not has_bf16_matmul():
            rows.append(dict.fromkeys(columns, "-") | {"dtype": dtype, "mode": "skipped: no native bfloat16"})
            continue
        peak = peak_flops("bfloat16" if bf16 else "float32")
        per_pair, grouped = measure(groups, False, bf16), measure(groups, True, bf16)
        for mode, m in (("per pair", per_pair), ("grouped", grouped)):
            rows.append({"dtype": dtype, "mode": mode, "labelled answers/s": f"{m['answers_per_s']:.2f}",
                         "tokens/s": f"{m['tokens_per_s']:.0f}", "of matmul peak": f"{m['tokens_per_s'] * train_fpt / peak:.1%}",
                         "timed": f"{m['steps']} steps, {m['answers']} answers, {m['tokens']} tokens, "
                                  f"{m['seconds']:.1f} s", "mean loss": f"{m['loss']:.3f}",
                         "speed-up": f"{m['answers_per_s'] / per_pair['answers_per_s']:.2f}x"})
    info = thread_info()
    load_after = os.getloadavg()
    return "\n".join([
        f"## Grouped SFT: {n_candidates} candidates behind one prompt prefix (SmolLM2-135M-Instruct, LoRA r=8)",
        "",
        f"{n_groups} MovieLens-100K users as LLM-TRSR ranker groups: prefix {min(prefix_tokens)}-"
        f"{max(prefix_tokens)} tokens (the ranker prompt up to the candidate), {n_candidates} candidates of "
        f"{min(cont_tokens)}-{max(cont_tokens)} tokens each (film text and the end of the turn), one answer token "
        f"(Yes/No, no EOS); a packed group row holds {min(row_tokens)}-{max(row_tokens)} tokens against "
        f"{min(prefix_tokens) + min(cont_tokens) + 1}-{max(prefix_tokens) + max(cont_tokens) + 1} per pair. "
        f"One epoch each: per pair {PAIR_BATCH} pairs per step, grouped one group ({n_candidates} pairs) per step; "
        "the first step is a warm-up and is not timed. Tokens are the tokens run through the model (a group's "
        "prefix once). The two modes visit the pairs in different batches, so their losses differ a little; the "
        "grouped loss and gradients equal the per-pair ones for the same pairs (tests/llm/test_sft_grouped.py). "
        "'of matmul peak': tokens/s x 4 x (the decoder blocks' linear weights) FLOPs per token (forward and the "
        "activation backward; attention not counted, so a lower bound) against a "
        f"{PEAK_SIZE}-square matmul in the same precision measured just before.",
        "",
        format_table(rows, columns),
        "",
        f"Machine: torch threads {info['torch_threads']}, {info['cores']} cores, native bfloat16 "
        f"{'yes' if has_bf16_matmul() else 'no'}; {load_note(load_before, load_after)}.",
    ]) + "\n"
