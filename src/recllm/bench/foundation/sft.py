"""LoRA SFT throughput of the bundled SmolLM2-135M, float32 and bfloat16 autocast, against the matmul roofline.

``run() -> str`` returns a markdown section for ``recllm bench foundation`` (alone: ``--only sft``). The training pairs
are 64 LLM-TRSR-style prompts built from MovieLens-100K (a user's recent ratings, a candidate film, "Yes"/"No": did they
rate it >= 4), about 100-200 tokens each. Each mode trains one epoch (8 optimizer steps of 8 pairs) through
``recllm.llm.sft_train``; the first step is a warm-up and is not timed.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

N_PAIRS, BATCH_SIZE, SEED, N_EVAL = 64, 8, 0, 16
SYSTEM = "You are a film recommender. Answer Yes or No."


def training_pairs(lm, n: int = N_PAIRS, seed: int = SEED) -> list[tuple[str, str]]:
    """(prompt, answer) pairs from MovieLens-100K: the user's last 3-6 rated films before a candidate."""
    from recllm.data import load
    from recllm.llm import chat_prompt

    data = load("ml-100k")
    titles = dict(zip(data.items["item_id"], data.items["title"]))
    genres = dict(zip(data.items["item_id"], data.items["genres"].str.replace("|", ", ")))
    rng = np.random.default_rng(seed)
    inter = data.interactions.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    pairs = []
    for user in rng.permutation(inter["user_id"].unique()):
        rows = inter[inter["user_id"] == user]
        length = int(rng.integers(3, 7))
        if len(rows) <= length:
            continue
        cut = int(rng.integers(length, len(rows)))
        history, target = rows.iloc[cut - length:cut], rows.iloc[cut]
        seen = "\n".join(f"- {titles[i]} ({genres[i]}): rated {int(r)}/5"
                         for i, r in zip(history["item_id"], history["rating"]))
        question = (f"The user recently rated these films:\n{seen}\n"
                    f"Candidate: {titles[target['item_id']]} ({genres[target['item_id']]}). "
                    "Will the user rate it 4 or higher?")
        pairs.append((chat_prompt(lm, question, system=SYSTEM), "Yes" if target["rating"] >= 4 else "No"))
        if len(pairs) == n:
            return pairs
    raise RuntimeError(f"ml-100k gave only {len(pairs)} usable users, fewer than {n}")


def block_linear_weights(model) -> int:
    """Weights of the linear layers inside the decoder blocks of a plain HF model (no embeddings, no LM head)."""
    return sum(m.weight.numel() for m in model.get_decoder().layers.modules() if isinstance(m, torch.nn.Linear))


def flops_per_pair(cfg, n_linear: int, prompt_len: int, answer_len: int) -> float:
    """Training FLOPs of one (prompt, answer) pair through a frozen base with LoRA, as recllm runs it.

    Forward: 2 FLOPs per weight of every linear layer in the decoder blocks (``n_linear``) per token, plus attention
    scores and weighted sums (2 x 2 x layers x heads x head_dim per attended position; causal: token t attends
    t+1), plus the LM head (2 x hidden x vocab) only at the answer-predicting positions (recllm skips it elsewhere).
    Backward through a frozen base computes activation gradients only (no weight gradients): about the forward
    again, so training = 2 x forward. LoRA's own matmuls (rank 8) are left out (< 1%).
    """
    n = prompt_len + answer_len
    heads_dim = cfg.num_attention_heads * getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    attention = 4 * cfg.num_hidden_layers * heads_dim * (n * (n + 1) / 2)
    head = 2 * cfg.hidden_size * cfg.vocab_size * answer_len
    return 2 * (2 * n_linear * n + attention + head)


def timed_training(lm, examples: list, config) -> tuple[object, list[dict], float]:
    """Train ``examples`` into ``lm`` with LoRA r=8 under ``config`` (``SFTConfig``; a temporary output folder) and
    return the tuned model, the logged optimizer steps (``training_log.jsonl`` lines with ``tokens_per_s``) and the
    wall seconds. The sections time the steps after the first (a warm-up)."""
    from recllm.llm.checkpoints import read_log
    from recllm.llm.sft import LoRAConfig, sft_train

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        tuned = sft_train(lm, examples, config, LoRAConfig(r=8), output_dir=out)
        wall = time.perf_counter() - start
        records = read_log(out)
    return tuned, [r for r in records if "tokens_per_s" in r], wall


def measure(pairs: list[tuple[str, str]], bf16: bool) -> dict:
    """Train one epoch on ``pairs`` with a fresh SmolLM2 and read tokens/s from the training log (step 1 excluded)."""
    from recllm.llm import load_causal_lm
    from recllm.llm.sft import SFTConfig, answer_nll, tokenize_examples
    from recllm.trsr.ranker import ranker_sft_config

    lm = load_causal_lm(dtype="float32")
    cfg, n_linear = lm.model.config, block_linear_weights(lm.model)
    config = SFTConfig(epochs=1, learning_rate=ranker_sft_config().learning_rate, batch_size=BATCH_SIZE,
                       max_length=256, seed=SEED, bf16=bf16,
                       checkpoint_every=0, log_every=1, show_progress=False, group_by_length=True)
    features, _ = tokenize_examples(lm.tokenizer, pairs, config.max_length)
    tuned, steps, wall = timed_training(lm, pairs, config)
    timed = steps[1:]
    tokens, seconds = sum(r["tokens"] for r in timed), sum(r["seconds"] for r in timed)
    # FLOPs of the timed steps: the same batches in the same order as sft_train (seeded length grouping)
    from recllm.llm.sft import _epoch_batches

    lengths = [len(p) + len(a) for p, a in features]
    batches = _epoch_batches(lengths, BATCH_SIZE, SEED, 0, True)[1:]
    flops = sum(flops_per_pair(cfg, n_linear, len(features[i][0]), len(features[i][1]))
                for batch in batches for i in batch)
    assert sum(lengths[i] for b in batches for i in b) == tokens, "timed steps and batch plan disagree"
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    nll = answer_nll(tuned, pairs[:N_EVAL], max_length=config.max_length)  # float32 forward, no autocast
    return {"padding": 1 - tokens / padded, "nll_after": nll, "tokens_per_s": tokens / seconds, "flops_per_s": flops / seconds, "tokens": tokens,
            "seconds": seconds, "wall": wall, "first_loss": steps[0]["loss"], "last_loss": steps[-1]["loss"],
            "timed_steps": len(timed)}


def run() -> str:
    """The markdown section: LoRA r=8 training tokens/s and its fraction of the measured matmul FLOP/s."""
    from recllm.eval.report import format_table
    from recllm.trsr.ranker import ranker_sft_config
    from recllm.bench.foundation.machine import PEAK_SIZE, load_note, peak_flops
    from recllm.llm import load_causal_lm, thread_info
    from recllm.llm.precision import has_bf16_matmul
    from recllm.llm.sft import answer_nll

    load_before = os.getloadavg()
    lm = load_causal_lm(dtype="float32")
    pairs = training_pairs(lm)
    prompt_tokens = [len(lm.tokenizer(p, add_special_tokens=False).input_ids) for p, _ in pairs]
    n_params = sum(p.numel() for p in lm.model.parameters())
    n_linear = block_linear_weights(lm.model)
    nll_before = answer_nll(lm, pairs[:N_EVAL], max_length=256)
    del lm
    columns = ["mode", "tokens/s", "achieved GFLOP/s", "matmul GFLOP/s (same dtype)", "fraction of matmul",
               "timed", "loss first -> last step", f"float32 answer NLL, {N_EVAL} pairs"]
    rows = []
    for label, bf16, dtype in (("float32", False, "float32"), ("bfloat16 autocast", True, "bfloat16")):
        if bf16 and not has_bf16_matmul():
            rows.append(dict.fromkeys(columns, "-") | {"mode": label, "tokens/s": "skipped: bfloat16 not native"})
            continue
        roof = peak_flops(dtype)  # right before, under the same machine load
        m = measure(pairs, bf16)
        rows.append({
            "mode": label,
            "tokens/s": f"{m['tokens_per_s']:.0f}",
            "achieved GFLOP/s": f"{m['flops_per_s'] / 1e9:.1f}",
            "matmul GFLOP/s (same dtype)": f"{roof / 1e9:.1f} ({dtype})",
            "fraction of matmul": f"{m['flops_per_s'] / roof:.1%}",
            "timed": f"{m['timed_steps']} steps, {m['tokens']} tokens (+{m['padding']:.1%} padding), "
                     f"{m['seconds']:.1f} s",
            "loss first -> last step": f"{m['first_loss']:.3f} -> {m['last_loss']:.3f}",
            f"float32 answer NLL, {N_EVAL} pairs": f"{nll_before:.4f} -> {m['nll_after']:.4f}",
        })
    info = thread_info()
    load_after = os.getloadavg()
    return "\n".join([
        "## LoRA SFT throughput (SmolLM2-135M-Instruct, LoRA r=8 on q/k/v/o)",
        "",
        f"{len(pairs)} prompt/answer pairs from MovieLens-100K (LLM-TRSR style: recent ratings, a candidate, "
        f"answer Yes/No); prompt length {min(prompt_tokens)}-{max(prompt_tokens)} tokens "
        f"(median {int(np.median(prompt_tokens))}), answer = 1 token + EOS. One epoch, batch {BATCH_SIZE}, "
        "length-grouped batches, AdamW; the first step is a warm-up and is not timed. Tokens are real (non-pad) "
        f"tokens: padding positions are computed but not counted. {n_params / 1e6:.1f}M parameters, float32 "
        "master weights.",
        "",
        format_table(rows, columns),
        "",
        "FLOPs counted per pair (training = 2 x forward, because the backward pass through the frozen base computes "
        "activation gradients only): forward = 2 x (weights of the decoder blocks' linear layers) per token "
        "+ causal attention 4 x layers x heads x head_dim x (attended length) per token "
        "+ LM head 2 x hidden x vocab at answer positions only (recllm's SFT skips it on prompt tokens). "
        f"For SmolLM2 this is 4 x {n_linear / 1e6:.1f}M = {4 * n_linear / 1e9:.2f} GFLOP per token plus attention "
        "(the LM head adds 4 x hidden x vocab per answer token only); the common 6 x N rule "
        f"(6 x {n_params / 1e6:.0f}M = {6 * n_params / 1e9:.2f} GFLOP/token) counts weight gradients and a "
        "full-vocabulary head that this run does not compute, so it would overstate the fractions about "
        f"{6 * n_params / (4 * n_linear):.1f}x. "
        f"The roofline is a {PEAK_SIZE} x {PEAK_SIZE} square matmul in the same dtype and thread setting "
        "(`recllm.llm.hardware.measure_matmul_flops`), measured just before each run; SmolLM2's 576-wide matmuls "
        "are skinnier and reach less.",
        "",
        "The loss column is the training loss as logged, computed under the run's own precision; the last column "
        f"evaluates the base model and each run's adapter in float32 on the first {N_EVAL} pairs (training data: "
        "a check that the update is real, not a generalisation figure). After one epoch at lr "
        f"{ranker_sft_config().learning_rate:g} (the TRSR ranker's) the LoRA update "
        "is still small next to the base activations, and bfloat16 rounding can hide part of it in a bfloat16 "
        "forward pass: compare the two columns.",
        "",
        f"Machine: torch threads {info['torch_threads']}, {info['cores']} cores, native bfloat16 "
        f"{'yes' if has_bf16_matmul() else 'no'}; {load_note(load_before, load_after)}.",
    ]) + "\n"
