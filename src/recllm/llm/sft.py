"""LoRA supervised fine-tuning of a causal LM on (prompt, answer) pairs, resumable from atomic checkpoints.

The loss is the mean negative log-likelihood of the answer tokens (answer + EOS) given the prompt; prompt and
answer are tokenized separately and concatenated, as ``recllm.llm.scoring`` does at inference. Sequences are
left-padded with explicit position ids so every answer ends at the right edge of the batch: the LM head then runs
only over the last ``max answer length + 1`` positions (the vocabulary projection is ~20% of SmolLM2's compute).
Checkpoints are peft adapter folders plus optimizer, scheduler, RNG and step state; rerunning with the same
``output_dir`` continues from the latest one and ends with the same weights as an uninterrupted run.
Grouped examples (many candidates behind one shared prompt prefix) are packed one group per row with a block
attention mask: :mod:`recllm.llm.sft_grouped`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recllm.llm.backbone import CausalLM
from recllm.llm.checkpoints import (OPTIMIZER_FILE as _OPTIM, RNG_FILE as _RNG, SCHEDULER_FILE as _SCHED,
                                    STATE_FILE as _STATE, append_log as _append_log,
                                    check_resumable as _check_resumable, checkpoints as _checkpoints,
                                    load_lora_weights as _load_lora_weights, run_config as _run_config,
                                    save_adapter_dir as _save_adapter_dir, save_checkpoint as _save_checkpoint,
                                    set_rng_state as _set_rng_state)
from recllm.llm.precision import use_bf16_autocast
from recllm.utils import (check_flag, is_finite_number, is_integer, keeps_global_rng, resolve_device,
                          seed_everything, write_json_atomic)

__all__ = ["LoRAConfig", "SFTConfig", "SFTProgress", "sft_train", "load_adapter", "load_sft_state", "tokenize_examples",
           "collate", "answer_nll"]

log = logging.getLogger(__name__)
IGNORE = -100


@dataclass
class LoRAConfig:
    """LoRA adapter shape: rank ``r``, scaling ``alpha / r``, dropout, and the linear layers it wraps."""

    r: int = 8
    alpha: float = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = (self.target_modules,)
        self.target_modules = tuple(self.target_modules)
        if not is_integer(self.r) or self.r < 1:
            raise ValueError(f"LoRAConfig.r must be a positive integer, got {self.r!r}")
        self.r = int(self.r)
        if not (is_finite_number(self.alpha) and self.alpha > 0):
            raise ValueError(f"LoRAConfig.alpha must be a finite number > 0, got {self.alpha!r}")
        if not (is_finite_number(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"LoRAConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules):
            raise ValueError(f"LoRAConfig.target_modules must be non-empty module names, got {self.target_modules!r}")

    def to_peft(self) -> Any:
        """The equivalent ``peft.LoraConfig`` for a causal LM."""
        from peft import LoraConfig, TaskType

        return LoraConfig(task_type=TaskType.CAUSAL_LM, r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), bias="none")


@dataclass
class SFTConfig:
    """Training schedule. Steps are optimizer steps (``batch_size * grad_accum`` examples each).

    ``bf16``: True, False or "auto" (bfloat16 autocast where :mod:`recllm.llm.precision` picks bfloat16 for the
    device; master weights stay float32).
    ``checkpoint_every``: steps between checkpoints (0: only at epoch ends); ``keep_checkpoints`` newest are kept.
    ``append_eos``: learn an end-of-text token after each answer (generation needs it to stop; a classifier read
    at the answer position, such as a Yes/No ranker, does not, and then the loss is on the answer alone).
    """

    epochs: int = 1
    learning_rate: float = 1e-4
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    bf16: bool | str = "auto"
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    group_by_length: bool = True
    append_eos: bool = True
    log_every: int = 10
    show_progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            if not is_integer(value) or value < 1:
                raise ValueError(f"SFTConfig.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))  # a NumPy integer as a plain int (the config is written as JSON)
        if not is_integer(self.max_length) or self.max_length < 2:
            raise ValueError(f"SFTConfig.max_length must be an integer >= 2, got {self.max_length!r}")
        self.max_length = int(self.max_length)
        if not is_integer(self.checkpoint_every) or self.checkpoint_every < 0:
            raise ValueError(f"SFTConfig.checkpoint_every must be an integer >= 0, got {self.checkpoint_every!r}")
        if not is_integer(self.seed):
            raise ValueError(f"SFTConfig.seed must be an integer, got {self.seed!r}")
        self.seed = int(self.seed)
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise ValueError(f"SFTConfig.learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"SFTConfig.bf16 must be True, False or 'auto', got {self.bf16!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"SFTConfig.warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not (is_finite_number(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"SFTConfig.weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        for name in ("group_by_length", "append_eos", "show_progress"):
            check_flag(getattr(self, name), f"SFTConfig.{name}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"SFTConfig.max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}")


# ------------------------------------------------------------------------------------------------ data
def tokenize_examples(tokenizer: Any, examples: Sequence[tuple[str, str]], max_length: int, append_eos: bool = True
                      ) -> tuple[list[tuple[list[int], list[int]]], dict[str, int]]:
    """Token ids ``(prompt_ids, answer_ids + [EOS])`` per example (no EOS unless ``append_eos``), cut to
    ``max_length`` total.

    Over-long examples lose prompt tokens from the left (the answer is what is learned); an answer longer than
    ``max_length - 1`` keeps its first tokens. The counts of both cuts are returned so callers can report them.
    """
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError("sft examples must be a non-empty list of (prompt, answer) string pairs")
    for row, example in enumerate(examples):
        if not (isinstance(example, (tuple, list)) and len(example) == 2
                and isinstance(example[0], str) and isinstance(example[1], str)):
            raise ValueError(f"sft example {row} must be a (prompt: str, answer: str) pair, got {example!r:.80}")
    eos = tokenizer.eos_token_id
    prompts = tokenizer([p for p, _ in examples], add_special_tokens=False)["input_ids"]
    answers = tokenizer([a for _, a in examples], add_special_tokens=False)["input_ids"]
    features, stats = [], {"examples": len(examples), "prompts_truncated": 0, "answers_truncated": 0}
    for prompt, answer in zip(prompts, answers):
        answer = list(answer) + ([eos] if eos is not None and append_eos else [])
        if len(answer) > max_length - 1:
            answer = answer[: max_length - 1]
            stats["answers_truncated"] += 1
        room = max_length - len(answer)
        if len(prompt) > room:
            prompt = prompt[len(prompt) - room:]
            stats["prompts_truncated"] += 1
        features.append((list(prompt), answer))
    return features, stats


def collate(features: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch: ``input_ids``, ``attention_mask``, ``position_ids`` (0 at each first real token) and
    ``labels`` (the answer tokens; -100 on prompt and padding, decided by lengths, never by the pad id)."""
    from recllm.llm.sft_segments import LabeledIds, collate_labeled

    if features and isinstance(features[0], LabeledIds):  # segment examples: labels given token by token
        return collate_labeled(features, pad_id)
    from recllm.llm.sft_grouped import GroupFeature, collate_groups

    if features and isinstance(features[0], GroupFeature):  # grouped examples: one packed row per group
        return collate_groups(features, pad_id)
    width = max(len(p) + len(a) for p, a in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    for row, (prompt, answer) in enumerate(features):
        n = len(prompt) + len(answer)
        ids[row, width - n:] = torch.tensor(prompt + answer, dtype=torch.long)
        mask[row, width - n:] = 1
        labels[row, width - len(answer):] = torch.tensor(answer, dtype=torch.long)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels}


@functools.lru_cache(maxsize=32)
def _accepts_logits_to_keep(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def _answer_loss_sum(model: Any, batch: dict[str, torch.Tensor], device: str) -> torch.Tensor:
    """Summed answer-token NLL of a collated batch, running the LM head only where answer tokens are predicted;
    each token's NLL times its ``label_weights`` entry where the batch has them (weighted grouped examples)."""
    labels = batch["labels"].to(device)
    width = labels.shape[1]
    has_label = (labels != IGNORE).any(dim=0).nonzero()
    keep = width - int(has_label.min()) + 1 if len(has_label) else 1  # left padding: answers end the rows
    keep = min(keep, width)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    extra = {"logits_to_keep": keep} if _accepts_logits_to_keep(type(base)) else {}  # else: full logits, sliced
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                position_ids=batch["position_ids"].to(device), use_cache=False, **extra)
    logits = out.logits[:, -keep:, :].float()
    targets = labels[:, width - keep + 1:]
    if "label_weights" not in batch:
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE, reduction="sum")
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
                          reduction="none")
    return (nll * batch["label_weights"][:, width - keep + 1:].to(device).reshape(-1)).sum()


def _pad_id(tokenizer: Any) -> int:
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if value is not None:
            return int(value)
    return 0  # pragma: no cover


@torch.no_grad()
def answer_nll(lm: CausalLM, examples: Sequence[tuple[str, str]], max_length: int = 256, batch_size: int = 8) -> float:
    """Mean negative log-likelihood per answer token (answer + EOS) of ``examples`` under ``lm`` (lower is better)."""
    features, _ = tokenize_examples(lm.tokenizer, examples, max_length)
    was_training = lm.model.training
    lm.model.eval()
    total, count = 0.0, 0
    for start in range(0, len(features), batch_size):
        chunk = features[start:start + batch_size]
        total += float(_answer_loss_sum(lm.model, collate(chunk, _pad_id(lm.tokenizer)), lm.device))
        count += sum(len(a) for _, a in chunk)
    lm.model.train(was_training)
    return total / count


def _epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int, by_length: bool) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle; with ``by_length``, similar lengths share a batch (less padding)
    while the batch order stays random."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)).tolist()
    if not by_length:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ------------------------------------------------------------------------------------------------ checkpoints
@dataclass
class _State:
    """What a checkpoint records about progress (``trainer_state.json``)."""

    step: int = 0
    epoch_loss_sum: float = 0.0  # summed answer-token NLL of the current epoch so far
    epoch_answer_tokens: int = 0
    epoch_scores: dict[str, float] = field(default_factory=dict)
    epoch_losses: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    done: bool = False
    stopped_early: bool = False  # ``should_stop`` ended the run before its last step (it is done all the same)


@dataclass(frozen=True)
class SFTProgress:
    """What ``sft_train``'s ``should_stop`` hook sees after each optimizer step: the step (1-based) of
    ``total_steps``, its epoch (0-based), whether it ended the epoch, this step's mean answer-token loss, and the
    epoch's ``eval_fn`` score (at an epoch end with an ``eval_fn``; else None)."""

    step: int
    total_steps: int
    epoch: int
    epoch_end: bool
    loss: float
    eval_score: float | None = None


class _Window:
    """Loss and throughput since the last log line."""

    def __init__(self) -> None:
        self.start, self.steps, self.loss, self.answer_tokens, self.tokens = time.perf_counter(), 0, 0.0, 0, 0
        self.step_loss, self.last_loss = 0.0, float("nan")

    def add(self, loss_sum: float, tokens: int) -> None:
        self.step_loss += loss_sum
        self.tokens += tokens

    def step_done(self, answer_tokens: int) -> float:
        loss, self.step_loss = self.step_loss, 0.0
        self.steps, self.loss, self.answer_tokens = self.steps + 1, self.loss + loss, self.answer_tokens + answer_tokens
        self.last_loss = loss / answer_tokens
        return loss

    def flush(self, step: int, epoch: int, lr: float) -> dict[str, Any]:
        seconds = time.perf_counter() - self.start
        record = {"step": step, "epoch": epoch, "loss": self.loss / max(self.answer_tokens, 1), "lr": lr,
                  "tokens": self.tokens, "seconds": seconds, "tokens_per_s": self.tokens / max(seconds, 1e-9)}
        self.__init__()  # type: ignore[misc]
        return record


def _end_epoch(state: _State, epoch: int, eval_fn: Callable[[CausalLM, int], float] | None, lm: CausalLM,
               out: Path | None) -> dict[str, Any]:
    """Record the epoch's train loss, run ``eval_fn`` and keep the adapter when it is the best so far."""
    state.epoch_losses[str(epoch)] = state.epoch_loss_sum / max(state.epoch_answer_tokens, 1)
    state.epoch_loss_sum, state.epoch_answer_tokens = 0.0, 0
    record: dict[str, Any] = {"event": "epoch", "epoch": epoch, "train_loss": state.epoch_losses[str(epoch)]}
    if eval_fn is None:
        return record
    lm.model.eval()
    score = float(eval_fn(lm, epoch))
    lm.model.train()
    if not math.isfinite(score):
        raise ValueError(f"eval_fn returned {score} after epoch {epoch}; it must return a finite float")
    state.epoch_scores[str(epoch)] = record["eval"] = score
    if state.best_epoch is None or score > state.epoch_scores[str(state.best_epoch)]:
        state.best_epoch = epoch
        record["improved"] = True
        if out is not None:
            _save_adapter_dir(lm.model, out / "best")
    return record


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft calls a transformers API deprecated in v5: nothing a user can act on, so keep it out of their logs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


# ------------------------------------------------------------------------------------------------ training
def _rank_micro_batches(group: Sequence[Sequence[int]], dist: Any, batch_size: int) -> list[tuple[list[int], float]]:
    """The micro-batches this process runs for one optimizer step (``group``: the step's batches) and the weight of
    each one's gradient. Outside torchrun: the step's batches, weight 1. Under torchrun the step's rows (examples,
    or whole groups) are split into ``world_size`` contiguous, near-equal shares -- so the ranker's step of two
    one-group batches gives each of 2 ranks a group -- each run in micro-batches of at most ``batch_size`` rows and
    weighted by the world size, so DDP's average of the ranks' gradients is the gradient of the whole step's mean.
    Every rank runs as many micro-batches (one row with weight 0 where its share runs out) to join each all-reduce."""
    if dist is None:
        return [(list(batch), 1.0) for batch in group]
    rows = [int(i) for batch in group for i in batch]
    mine = [int(i) for i in dist.part(np.asarray(rows))]
    count = math.ceil(math.ceil(len(rows) / dist.world_size) / batch_size)  # the largest share's micro-batches
    parts = [mine[k * batch_size:(k + 1) * batch_size] for k in range(count)]
    return [(part, float(dist.world_size)) if part else ([rows[0]], 0.0) for part in parts]


def _rank_loss_sum(net: Any, features: Sequence[Any], rows: Sequence[int], weight: float, pad: int, device: str,
                   autocast: Any) -> tuple[torch.Tensor, int]:
    """The summed answer NLL of ``rows`` (one micro-batch of :func:`_rank_micro_batches`) and their token count
    (0 for a weight-0 row)."""
    inputs = collate([features[i] for i in rows], pad)
    with autocast:
        loss_sum = _answer_loss_sum(net, inputs, device)
    tokens = int(inputs.get("token_mask", inputs["attention_mask"]).sum()) if weight else 0
    return loss_sum, tokens


def _asks_to_stop(should_stop: Callable[[SFTProgress], bool], progress: SFTProgress, dist: Any) -> bool:
    """The hook's answer; under torchrun, whether any rank's hook asked (every rank must stop at the same step)."""
    asked = bool(should_stop(progress))
    return dist.sum(float(asked)) > 0 if dist is not None else asked


@keeps_global_rng  # seeded for its own numbers; the caller's random streams are left as they were
def sft_train(lm: CausalLM, examples: Sequence[Any] | Callable[[int], Sequence[Any]], config: SFTConfig | None = None,
              lora: LoRAConfig | None = None, output_dir: str | os.PathLike[str] | None = None,
              eval_fn: Callable[[CausalLM, int], float] | None = None, *,
              stop_after_steps: int | None = None,
              should_stop: Callable[[SFTProgress], bool] | None = None) -> CausalLM:
    """Fine-tune ``lm`` with a LoRA adapter on ``(prompt, answer)`` pairs; returns a CausalLM wrapping the
    ``PeftModel`` (the base model of ``lm`` gets the LoRA layers injected in place). ``examples`` may also be
    segment examples (lists of ``(text, is_target)`` pieces, loss on the target pieces) or a callable
    ``examples_for_epoch(epoch) -> list`` giving each epoch its own examples; see :mod:`recllm.llm.sft_segments`.
    A list of ``GroupedExample`` (one prompt prefix with many ``(continuation, answer)`` pairs) trains every pair
    while computing each prefix once; ``batch_size`` then counts groups (:mod:`recllm.llm.sft_grouped`).

    With ``output_dir`` the run writes ``config.json``, ``training_log.jsonl`` and atomic checkpoints there and
    resumes from the latest checkpoint when rerun. Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the adapter
    trains with DistributedDataParallel, each rank a share of every optimizer step's examples or groups
    (``batch_size * grad_accum`` stays the global step; ``batch_size`` bounds each forward pass), and only rank 0
    writes; every rank resumes from the same checkpoint. ``eval_fn(lm, epoch) -> score`` (higher
    is better) runs after each epoch (on every rank); the best epoch's adapter is kept (``output_dir/best``) and
    returned. ``stop_after_steps`` ends the run early after that many optimizer steps in total (checkpointed), e.g.
    for time-boxed jobs; rerun to continue.

    ``should_stop(progress) -> bool`` (an :class:`SFTProgress`) runs after every optimizer step, after the epoch's
    ``eval_fn`` at an epoch end (e.g. early stopping on validation). True ends the run for good after that step: it
    is checkpointed as usual, the trainer state records ``stopped_early`` (and ``done``), the log gets a
    ``stopped_early`` event, and the best epoch's adapter is returned as at a normal finish (else the adapter of
    that step); rerunning with the same ``output_dir`` finds the run finished. Under torchrun any rank asking stops
    every rank.
    """
    from peft import PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    config, lora = config or SFTConfig(), lora or LoRAConfig()
    if isinstance(lm.model, PeftModel):
        raise ValueError("lm already carries a peft adapter; load a fresh base model (or merge_and_unload) first")
    if stop_after_steps is not None and stop_after_steps < 1:
        raise ValueError(f"stop_after_steps must be >= 1 or None, got {stop_after_steps!r}")
    from recllm.llm.sft_grouped import check_attention, is_grouped, tokenize_grouped_epochs
    from recllm.llm.sft_segments import feature_length, target_count, tokenize_epochs

    grouped = is_grouped(examples)
    if grouped:
        check_attention(lm.model)
    tokenize = tokenize_grouped_epochs if grouped else tokenize_epochs
    features_by_epoch, stats, examples = tokenize(lm.tokenizer, examples, config.epochs, config.max_length,
                                                  config.append_eos)
    features = features_by_epoch[0]
    if stats["prompts_truncated"] or stats["answers_truncated"]:
        log.warning("sft: %d prompts cut from the left and %d answers cut to fit max_length=%d",
                    stats["prompts_truncated"], stats["answers_truncated"], config.max_length)
    out = Path(output_dir) if output_dir is not None else None
    from recllm.distributed.ddp import context as _dist_context

    dist = _dist_context(lm.device or "auto")  # under torchrun: DDP, each rank a 1/N share of every batch
    device = dist.device if dist else resolve_device(lm.device) if lm.device else "cpu"
    writer = out if dist is None or dist.is_main else None  # only rank 0 writes; every rank reads checkpoints
    bf16 = use_bf16_autocast(config.bf16, device)
    run_config = _run_config(lm, examples, config, lora)
    run_config["resolved"] = {"device": device, "bf16": bf16, "torch_threads": torch.get_num_threads(),
                              "world_size": dist.world_size if dist else 1}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "config.json").exists():
            _check_resumable(json.loads((out / "config.json").read_text(encoding="utf-8")), run_config, out)
        if writer is not None:
            write_json_atomic(out / "config.json", run_config)

    seed_everything(config.seed)
    with _quiet_peft():
        model = get_peft_model(lm.model, lora.to_peft())
    model.to(device)
    net = dist.wrap(model) if dist else model  # the training forward goes through DDP's gradient hooks
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    lengths = [feature_length(f) for f in features]
    steps_per_epoch = math.ceil(math.ceil(len(features) / config.batch_size) / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total_steps), total_steps)

    state, best_memory = _State(), None
    checkpoints = _checkpoints(out) if out is not None else []
    if checkpoints:
        step, folder = checkpoints[-1]
        _load_lora_weights(model, folder)
        optimizer.load_state_dict(torch.load(folder / _OPTIM, map_location=device, weights_only=True))
        scheduler.load_state_dict(torch.load(folder / _SCHED, weights_only=True))
        _set_rng_state(torch.load(folder / _RNG, weights_only=True))
        state = _State(**json.loads((folder / _STATE).read_text(encoding="utf-8")))
        _append_log(writer, {"event": "resume", "step": step, "time": time.time()})
    else:
        _append_log(writer, {"event": "start", "time": time.time(), "total_steps": total_steps, "bf16": bf16, **stats})
    state.best_epoch = None if state.best_epoch is None else int(state.best_epoch)

    wrapped = dataclasses.replace(lm, model=model)
    pad = _pad_id(lm.tokenizer)
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu",
                              dtype=torch.bfloat16, enabled=bf16)
    quiet = not config.show_progress or (dist is not None and not dist.is_main)
    bar = tqdm(total=total_steps, initial=state.step, disable=quiet, desc="sft", unit="step")
    window = _Window()
    stopped = False
    model.train()
    for epoch in range(config.epochs):
        if stopped or state.stopped_early or state.step >= (epoch + 1) * steps_per_epoch:
            continue
        features = features_by_epoch[epoch]
        lengths = [feature_length(f) for f in features]
        batches = _epoch_batches(lengths, config.batch_size, config.seed, epoch, config.group_by_length)
        groups = [batches[i:i + config.grad_accum] for i in range(0, len(batches), config.grad_accum)]
        for index, group in enumerate(groups):
            step = epoch * steps_per_epoch + index + 1
            if step <= state.step:
                continue
            n_answer = sum(target_count(features[i]) for batch in group for i in batch)
            # gradient accumulation: the step's loss is the mean over all its answer tokens
            for rows, weight in _rank_micro_batches(group, dist, config.batch_size):
                loss_sum, tokens = _rank_loss_sum(net, features, rows, weight, pad, device, autocast)
                (loss_sum * weight / n_answer).backward()
                loss_value = loss_sum.item() if weight else 0.0
                if dist is not None:  # the whole batch's figures, for the log
                    loss_value, tokens = dist.sum(loss_value), int(dist.sum(tokens))
                window.add(loss_value, tokens)
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step = step
            state.epoch_loss_sum += window.step_done(n_answer)
            state.epoch_answer_tokens += n_answer
            bar.update(1)
            bar.set_postfix(loss=f"{window.last_loss:.4f}")
            epoch_end = index == len(groups) - 1
            if window.steps >= config.log_every or epoch_end:
                _append_log(writer, window.flush(step, epoch, scheduler.get_last_lr()[0]))
            paused = time.perf_counter()  # evaluation and checkpoints do not count towards tokens/s
            if epoch_end:
                record = _end_epoch(state, epoch, eval_fn, wrapped, writer)
                if record.pop("improved", False) and writer is None:
                    best_memory = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
                _append_log(writer, record)
            if should_stop is not None and step < total_steps:
                progress = SFTProgress(step, total_steps, epoch, epoch_end, window.last_loss,
                                       state.epoch_scores.get(str(epoch)) if epoch_end else None)
                state.stopped_early = _asks_to_stop(should_stop, progress, dist)
            stopped = state.stopped_early or stop_after_steps is not None and stop_after_steps <= step < total_steps
            if state.stopped_early:
                log.info("sft: stopped early after step %d of %d (epoch %d): should_stop asked", step, total_steps,
                         epoch)
                _append_log(writer, {"event": "stopped_early", "step": step, "epoch": epoch})
            if writer is not None and (epoch_end or stopped or (config.checkpoint_every
                                                                and step % config.checkpoint_every == 0)):
                state.done = step == total_steps or state.stopped_early
                _save_checkpoint(writer, model, optimizer, scheduler, state, config.keep_checkpoints)
            window.start += time.perf_counter() - paused
            if stopped:
                break
    bar.close()

    if state.best_epoch is not None and (not stopped or state.stopped_early):
        if writer is not None:
            _load_lora_weights(model, writer / "best")
        elif best_memory is not None:
            set_peft_model_state_dict(model, best_memory)
        elif out is not None and (out / "best").is_dir():  # another rank after a resume: the best epoch came
            _load_lora_weights(model, out / "best")        # before it, so rank 0 wrote it in an earlier process
    model.eval()
    return wrapped


def load_sft_state(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The trainer state of the latest checkpoint in ``output_dir``: step, per-epoch losses and eval scores,
    best epoch, and whether the run finished."""
    checkpoints = _checkpoints(Path(output_dir))
    if not checkpoints:
        raise FileNotFoundError(f"{output_dir} holds no sft checkpoint (checkpoint-<step>/{_STATE})")
    return json.loads((checkpoints[-1][1] / _STATE).read_text(encoding="utf-8"))


def load_adapter(lm: CausalLM, folder: str | os.PathLike[str]) -> CausalLM:
    """``lm`` with the LoRA adapter in ``folder`` loaded (inference mode); ``folder`` may be an adapter folder or
    an ``sft_train`` output_dir (then its ``best`` adapter, else its latest checkpoint)."""
    from peft import PeftModel

    path = Path(folder)
    if not (path / "adapter_config.json").exists():
        candidates = [path / "best"] if (path / "best" / "adapter_config.json").exists() else []
        candidates += [p for _, p in reversed(_checkpoints(path))] if path.is_dir() else []
        if not candidates:
            raise FileNotFoundError(f"{path} holds no LoRA adapter (adapter_config.json) and no sft checkpoint")
        path = candidates[0]
    if isinstance(lm.model, PeftModel):
        raise ValueError("lm already carries a peft adapter; load a fresh base model first")
    with _quiet_peft():
        model = PeftModel.from_pretrained(lm.model, str(path), is_trainable=False).eval()
    return dataclasses.replace(lm, model=model)


def __getattr__(name: str) -> Any:
    """``GroupedExample`` lives in :mod:`recllm.llm.sft_grouped` (which imports this module); re-export it lazily."""
    if name == "GroupedExample":
        from recllm.llm.sft_grouped import GroupedExample

        return GroupedExample
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
