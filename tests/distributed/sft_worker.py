"""Run under torchrun by test_ddp_sft.py (or in one process): LoRA SFT of the tiny model, checkpointed every step.

``python sft_worker.py OUT RESULT [DIE_AT]``: trains into ``OUT``; rank 0 writes the adapter weights to ``RESULT``
(JSON); with ``DIE_AT`` rank 0 kills its process right after writing that step's checkpoint (a crash mid-run).
With ``SFT_WORKER_GROUPED=1`` it trains on grouped examples (:data:`GROUPS`, LLM-TRSR's ranker format) and every
rank also writes ``RESULT.rank<R>.json``: how many groups it ran in each forward pass (with
:data:`GROUPED_CONFIG`, the ranker's one group per pass and two per step).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import torch

import recllm.llm.sft as sft
from recllm.distributed.ddp import is_main_process
from recllm.llm.backbone import tiny_causal_lm
from recllm.llm.sft import LoRAConfig, SFTConfig, sft_train

TEMPLATE = "<|im_start|>user\nWhat colour is {}?<|im_end|>\n<|im_start|>assistant\n"
PAIRS = [("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"),
         ("the sun", "yellow"), ("the night", "dark"), ("milk", "white"), ("an orange", "orange"),
         ("a lemon", "yellow"), ("the sea", "blue"), ("a plum", "purple")]
EXAMPLES = [(TEMPLATE.format(thing), colour) for thing, colour in PAIRS]
# grouped examples: one prompt prefix per group, each candidate answered Yes or No (8 groups of 2 to 4 candidates)
GROUP_PREFIX = "<|im_start|>user\nDoes someone who liked {} like "


def _groups():
    from recllm.llm.sft_grouped import GroupedExample

    things = [thing for thing, _ in PAIRS]
    return [GroupedExample(GROUP_PREFIX.format(things[g]),
                           [(f"{things[(g + k + 1) % len(things)]}?<|im_end|>\n<|im_start|>assistant\n",
                             "Yes" if (g + k) % 3 == 0 else "No") for k in range(2 + g % 3)])
            for g in range(8)]
CONFIG = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=4, checkpoint_every=1, keep_checkpoints=2, log_every=1,
                   warmup_ratio=0.0, bf16=False, show_progress=False, seed=0)
# the LLM-TRSR ranker's schedule: one group per forward pass, two per optimizer step
GROUPED_CONFIG = dataclasses.replace(CONFIG, batch_size=1, grad_accum=2)
LORA = LoRAConfig(dropout=0.0)  # dropout draws per rank: no dropout for a numerical comparison


def model():
    torch.set_num_threads(1)
    lm = tiny_causal_lm(seed=0)
    emb = lm.model.get_input_embeddings().weight  # a learnable EOS row, as in tests/llm/test_sft.py
    with torch.no_grad():
        emb[lm.tokenizer.eos_token_id] = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0)) * 0.2
    return lm


def train(out: str, die_at: int | None = None, grouped: bool = False) -> dict[str, list]:
    """Fine-tune into ``out`` (on :func:`_groups` when ``grouped``); the LoRA weights as lists."""
    from peft import get_peft_model_state_dict

    if die_at is not None:
        save = sft._save_checkpoint

        def save_then_die(out, model, optimizer, scheduler, state, keep):  # noqa: ANN001
            save(out, model, optimizer, scheduler, state, keep)
            if state.step == die_at:
                os._exit(3)

        sft._save_checkpoint = save_then_die
    examples, config = (_groups(), GROUPED_CONFIG) if grouped else (EXAMPLES, CONFIG)
    tuned = sft_train(model(), examples, config, LORA, output_dir=out)
    return {k: v.tolist() for k, v in get_peft_model_state_dict(tuned.model).items()}


def step_losses(out: str) -> list[float]:
    """The loss of every optimizer step, from the run's training log (log_every=1)."""
    with open(os.path.join(out, "training_log.jsonl"), encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh]
    return [r["loss"] for r in records if "step" in r and "loss" in r]


def count_rows() -> list[int]:
    """Record how many examples (groups) each training forward pass of this process runs."""
    rows: list[int] = []
    collate = sft.collate

    def counting(features, pad_id):  # noqa: ANN001
        rows.append(len(features))
        return collate(features, pad_id)

    sft.collate = counting
    return rows


if __name__ == "__main__":
    grouped = os.environ.get("SFT_WORKER_GROUPED") == "1"
    rows = count_rows() if grouped else []
    weights = train(sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else None, grouped=grouped)
    if grouped:
        with open(f"{sys.argv[2]}.rank{os.environ.get('RANK', '0')}.json", "w", encoding="utf-8") as fh:
            json.dump(rows, fh)
    if is_main_process():
        with open(sys.argv[2], "w", encoding="utf-8") as fh:
            json.dump(weights, fh)
