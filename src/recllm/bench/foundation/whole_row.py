"""Whole-row vs per-cell LoRA SFT for the LLM imputer: observed cells learned per second (SmolLM2-135M, float32).

``run() -> str`` returns a markdown section for ``recllm bench foundation`` (alone: ``--only whole_row``), in the
style of :mod:`recllm.bench.foundation.sft`. The table is a real
feature table of the imputation benchmark (advertising users by default, or MovieLens-100K items) with MCAR 20% of
its masked columns removed (seed 0), and the learned columns are the masked ones, as ``recllm bench impute`` sets
them. Each mode trains one epoch through ``recllm.llm.sft_train`` on the examples ``LLMImputer`` builds for it:

- per-cell: ``LLMImputer.training_examples`` -- one (prompt, answer) pair per observed cell (a seeded sample);
- whole-row: ``LLMImputer.whole_row_examples`` -- one sequence per row, every observed learned value a target.

Both train the same number of sequences in batches of the same size; the first optimizer step is a warm-up and is
not timed. A cell is "learned" when its value carries loss; the figure is learned cells per timed second.
"""

from __future__ import annotations

import os

import numpy as np

TABLES = {"advertising": 0, "ml-100k": 1}  # index of the feature table in recllm.bench.impute.tasks.TABLES[dataset]
N_EXAMPLES, BATCH_SIZE, SEED, RATE = 64, 8, 0, 0.2


def masked_table(dataset: str):
    """(masked table, its TableSpec): the benchmark's feature table with MCAR ``RATE`` of its masked columns."""
    from recllm.data import load
    from recllm.data.missing import inject_missing
    from recllm.bench.impute.tasks import TABLES as SPECS, feature_table

    spec = SPECS[dataset][TABLES[dataset]]
    truth = feature_table(load(dataset), spec)
    masked, _ = inject_missing(truth, spec.masked, RATE, "mcar", seed=SEED)
    return masked, spec


def mode_examples(mode: str, masked, spec, eos: str, n: int) -> tuple[list, list[int]]:
    """The imputer's first-epoch training sequences for ``mode`` and the learned cells in each."""
    from recllm.impute.llm import LLMImputer

    imp = LLMImputer(training=mode, max_train_examples=n, target_columns=spec.masked, seed=SEED,
                     **spec.imputer_kinds())
    if mode == "per-cell":
        examples = imp.training_examples(masked)
        return examples, [1] * len(examples)
    examples = imp.whole_row_examples(masked, end=eos)(0)
    return examples, [sum(target for _, target in pieces) for pieces in examples]


def measure(mode: str, masked, spec, n: int, batch_size: int) -> dict:
    """One epoch of ``mode`` with a fresh SmolLM2; learned cells and tokens per timed second (step 1 excluded)."""
    from recllm.llm import load_causal_lm
    from recllm.bench.foundation.sft import timed_training
    from recllm.impute.llm import DEFAULT_SFT
    from recllm.llm.sft import SFTConfig, _epoch_batches
    from recllm.llm.sft_segments import feature_length, tokenize_epochs

    lm = load_causal_lm(dtype="float32")
    examples, cells = mode_examples(mode, masked, spec, lm.tokenizer.eos_token or "", n)
    config = SFTConfig(epochs=1, learning_rate=DEFAULT_SFT.learning_rate, batch_size=batch_size, max_length=256,
                       seed=SEED, bf16=False, checkpoint_every=0, log_every=1, show_progress=False,
                       group_by_length=True)
    features = tokenize_epochs(lm.tokenizer, examples, 1, config.max_length)[0][0]
    _, steps, wall = timed_training(lm, examples, config)
    timed = steps[1:]
    seconds, tokens = sum(r["seconds"] for r in timed), sum(r["tokens"] for r in timed)
    lengths = [feature_length(f) for f in features]
    batches = _epoch_batches(lengths, batch_size, SEED, 0, True)[1:]  # the timed steps, as sft_train ran them
    assert sum(lengths[i] for b in batches for i in b) == tokens, "timed steps and batch plan disagree"
    learned = sum(cells[i] for b in batches for i in b)
    return {"mode": mode, "sequences": len(examples), "cells": sum(cells), "timed_steps": len(timed),
            "timed_cells": learned, "tokens": tokens, "seconds": seconds, "wall": wall,
            "cells_per_s": learned / seconds, "tokens_per_s": tokens / seconds,
            "tokens_per_sequence": float(np.mean(lengths)), "first_loss": steps[0]["loss"],
            "last_loss": steps[-1]["loss"]}


def run(dataset: str = "advertising", examples: int = N_EXAMPLES, batch_size: int = BATCH_SIZE) -> str:
    """The markdown section: learned cells/s of whole-row and per-cell SFT, and their ratio."""
    from recllm.bench.foundation.sft import block_linear_weights
    from recllm.impute.llm import DEFAULT_SFT
    from recllm.eval.report import format_table
    from recllm.bench.foundation.machine import PEAK_SIZE, load_note, peak_flops
    from recllm.llm import load_causal_lm, thread_info

    train_fpt = 4.0 * block_linear_weights(load_causal_lm(dtype="float32").model)
    load_before = os.getloadavg()
    masked, spec = masked_table(dataset)
    peak = peak_flops("float32")
    results = [measure(mode, masked, spec, examples, batch_size) for mode in ("per-cell", "whole-row")]
    load_after = os.getloadavg()
    columns = ["training", "sequences", "learned cells", "tokens / sequence", "timed", "tokens/s", "of matmul peak",
               "learned cells/s", "loss first -> last step"]
    rows = [{
        "training": m["mode"], "sequences": m["sequences"], "learned cells": m["cells"],
        "tokens / sequence": f"{m['tokens_per_sequence']:.0f}",
        "timed": f"{m['timed_steps']} steps, {m['timed_cells']} cells, {m['seconds']:.1f} s",
        "tokens/s": f"{m['tokens_per_s']:.0f}", "of matmul peak": f"{m['tokens_per_s'] * train_fpt / peak:.1%}",
        "learned cells/s": f"{m['cells_per_s']:.2f}",
        "loss first -> last step": f"{m['first_loss']:.3f} -> {m['last_loss']:.3f}",
    } for m in results]
    ratio = results[1]["cells_per_s"] / results[0]["cells_per_s"]
    info = thread_info()
    return "\n".join([
        "## Whole-row vs per-cell SFT for the LLM imputer (SmolLM2-135M-Instruct, float32, LoRA r=8 on q/k/v/o)",
        "",
        f"Table {spec.name} ({len(masked)} rows; learned columns {', '.join(spec.masked)}; MCAR {RATE:.0%} of them "
        f"removed, seed {SEED}). Each mode trains one epoch of {examples} sequences (seeded sample) in batches of "
        f"{batch_size}, length-grouped, AdamW lr {DEFAULT_SFT.learning_rate:g} (the imputer's); the first step is a "
        "warm-up and is not timed. per-cell: one "
        "sequence per observed cell (the row's other cells, then the asked column; loss on its value + EOS); "
        "whole-row: one sequence per row, its observed cells as `column: value` lines in a random order, loss on "
        "every learned value + EOS. Losses are per learned token and are not comparable between the modes. "
        "'of matmul peak': tokens/s x 4 x (the decoder blocks' linear weights) FLOPs per token (attention not "
        f"counted: a lower bound) against a float32 {PEAK_SIZE}-square matmul measured just before.",
        "",
        format_table(rows, columns),
        "",
        f"**Whole-row learns {ratio:.2f}x as many observed cells per second as per-cell.** (Throughput only: "
        "whether a cell learned in a row teaches as much as a cell learned alone is for the imputation benchmark.)",
        "",
        f"Machine: torch threads {info['torch_threads']}, {info['cores']} cores; {load_note(load_before, load_after)}.",
    ]) + "\n"
