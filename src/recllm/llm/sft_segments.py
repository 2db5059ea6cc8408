"""Token-level loss masks for SFT: an example as ``(text, is_target)`` pieces, learned on its target pieces only.

``sft_train`` learns ``(prompt, answer)`` pairs with the loss on the answer at the end. Some examples teach many
things at once -- a whole table row teaches every value in it -- so the loss must fall on pieces spread through the
sequence. A *segment example* is a sequence of ``(text, is_target)`` pieces: each piece is tokenized on its own (as
``recllm.llm.scoring`` tokenizes a prefix and its continuation), the ids are concatenated, and the labels are the
ids of the target pieces and -100 elsewhere. Segment examples are learned as written (``SFTConfig.append_eos``
applies to pairs only: put an end marker into a target piece when one should be learned).

``sft_train`` also accepts a callable ``examples_for_epoch(epoch) -> list`` so that every epoch sees freshly written
examples (e.g. a new column order). It is called once per epoch when a run starts and must be deterministic: the
examples of all epochs are hashed into the run's config, so a resumed run checks it sees the very same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from recllm.llm.sft import IGNORE, tokenize_examples

Segment = tuple[str, bool]

__all__ = ["LabeledIds", "Segment", "collate_labeled", "examples_by_epoch", "feature_length", "is_segment_example",
           "target_count", "tokenize_epochs", "tokenize_segments"]


@dataclass(frozen=True)
class LabeledIds:
    """One tokenized segment example: its token ids, and per token the id to learn or -100 (not learned)."""

    ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def n_targets(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def is_segment_example(example: Any) -> bool:
    """Whether ``example`` is a sequence of pieces (a ``(prompt, answer)`` pair is a sequence of strings)."""
    return isinstance(example, (list, tuple)) and len(example) > 0 and isinstance(example[0], (list, tuple))


def _check_segments(row: int, example: Any) -> None:
    if not is_segment_example(example) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], bool)
            for p in example):
        raise ValueError(f"sft example {row} must be a list of (text: str, is_target: bool) pieces, "
                         f"got {example!r:.80}")
    if not any(target and text for text, target in example):
        raise ValueError(f"sft example {row} has no non-empty target piece: it would teach nothing")


def tokenize_segments(tokenizer: Any, examples: Sequence[Sequence[Segment]], max_length: int
                      ) -> tuple[list[LabeledIds], dict[str, int]]:
    """Token ids and labels per segment example, cut to ``max_length`` tokens from the right.

    A cut sequence loses its last pieces (counted as ``answers_truncated``, the key ``tokenize_examples`` uses for
    lost target tokens); a sequence left without any target token is an error.
    """
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError("sft examples must be a non-empty list")
    for row, example in enumerate(examples):
        _check_segments(row, example)
    texts = [text for example in examples for text, _ in example]
    ids_of = iter(tokenizer(texts, add_special_tokens=False)["input_ids"])
    features, stats = [], {"examples": len(examples), "prompts_truncated": 0, "answers_truncated": 0}
    for row, example in enumerate(examples):
        ids: list[int] = []
        labels: list[int] = []
        for _, target in example:
            piece = list(next(ids_of))
            ids += piece
            labels += piece if target else [IGNORE] * len(piece)
        if len(ids) > max_length:
            ids, labels = ids[:max_length], labels[:max_length]
            stats["answers_truncated"] += 1
        feature = LabeledIds(tuple(ids), tuple(labels))
        if feature.n_targets == 0:
            raise ValueError(f"sft example {row} keeps no target token within max_length={max_length}; "
                             "raise SFTConfig.max_length or shorten the example")
        features.append(feature)
    return features, stats


def collate_labeled(features: Sequence[LabeledIds], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded batch like ``sft.collate``: ``input_ids``, ``attention_mask``, ``position_ids`` (0 at each first
    real token) and ``labels`` (-100 on non-target tokens and padding)."""
    width = max(len(f.ids) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature.ids)
        ids[row, width - n:] = torch.tensor(feature.ids, dtype=torch.long)
        labels[row, width - n:] = torch.tensor(feature.labels, dtype=torch.long)
        mask[row, width - n:] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": labels}


def feature_length(feature: Any) -> int:
    """Tokens of a tokenized example (a ``(prompt_ids, answer_ids)`` pair or a ``LabeledIds``)."""
    return len(feature.ids) if isinstance(feature, LabeledIds) else len(feature[0]) + len(feature[1])


def target_count(feature: Any) -> int:
    """Tokens that carry a label in a tokenized example."""
    return feature.n_targets if isinstance(feature, LabeledIds) else len(feature[1])


def examples_by_epoch(examples: Sequence[Any] | Callable[[int], Sequence[Any]], epochs: int) -> list[Sequence[Any]]:
    """The examples of each epoch: ``examples`` itself every epoch, or ``examples(epoch)`` when it is callable (each
    epoch must bring the same number of examples, since the schedule counts steps per epoch)."""
    if not callable(examples):
        return [examples] * epochs
    out = [examples(epoch) for epoch in range(epochs)]
    sizes = {len(e) if isinstance(e, (list, tuple)) else -1 for e in out}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"examples_for_epoch must return a list of the same length every epoch, got lengths "
                         f"{[len(e) if isinstance(e, (list, tuple)) else type(e).__name__ for e in out]}")
    return out


def tokenize_epochs(tokenizer: Any, examples: Sequence[Any] | Callable[[int], Sequence[Any]], epochs: int,
                    max_length: int, append_eos: bool = True) -> tuple[list[list[Any]], dict[str, int], list[Any]]:
    """``(features of each epoch, truncation counts, examples to hash)`` for ``sft_train``.

    Examples are ``(prompt, answer)`` pairs or segment examples (not mixed). A plain list is tokenized once and
    hashed as it is (so existing runs keep their config hash); a callable's epochs are hashed end to end.
    """
    per_epoch = examples_by_epoch(examples, epochs)
    done: dict[int, tuple[list[Any], dict[str, int]]] = {}
    for batch in per_epoch:
        if id(batch) in done:
            continue
        if isinstance(batch, (list, tuple)) and batch and is_segment_example(batch[0]):
            done[id(batch)] = tokenize_segments(tokenizer, batch, max_length)
        else:
            features, stats = tokenize_examples(tokenizer, batch, max_length, append_eos)
            done[id(batch)] = list(features), stats
    stats: dict[str, int] = {}
    for _, counts in done.values():
        for key, value in counts.items():
            stats[key] = stats.get(key, 0) + value
    hashed = list(examples) if not callable(examples) else [e for batch in per_epoch for e in batch]
    return [done[id(batch)][0] for batch in per_epoch], stats, hashed
