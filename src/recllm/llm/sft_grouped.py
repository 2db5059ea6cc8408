"""Multi-candidate SFT: one prompt prefix with many (continuation, answer) pairs, the prefix computed once per group.

An LLM-TRSR ranker example is a ~300-token prompt for a one-token answer, and all of a user's candidates share the
prompt up to the candidate's text. A :class:`GroupedExample` holds that prefix once with its candidates, and
``recllm.llm.sft.sft_train`` trains on a list of them: each group is packed into one row, the prefix runs once
(forward and backward), and every candidate attends to the prefix and to itself only, with position ids continuing
from the prefix, so each candidate is computed exactly as the lone sequence ``prefix + continuation + answer``.

Implementation: one packed row per group with a 4-D block attention mask and explicit position ids, rather than
running the prefix with ``use_cache`` and expanding its KV cache over the candidates. Measured on SmolLM2-135M,
float32, 1 thread, forward + backward of one group of 21 candidates after a 311-token prefix (a TRSR prompt), on a
loaded 2-core machine: packed 45-56 s, expanded cache 76-88 s. Grouped-query attention materialises the expanded
cache once per candidate (and keeps it for the backward pass) and the candidates are right-padded to the longest,
while the packed row has no padding, and attention over its ~800 positions is cheap next to the linear layers.
The mask and positions are explicit, so the order of tokens in the row is free: each continuation's last token and
its answer are placed at the end of the row (answers end at the right edge, as in the per-pair path), and
``recllm.llm.sft``'s loss runs the LM head only over those last positions. The mask is boolean, the form
transformers' ``sdpa`` attention takes in any dtype (torch 2.13's CPU kernel misreads a float32 additive mask next
to float64 queries); ``eager`` attention adds the mask to its scores and flash kernels take no 4-D mask, so both
are refused. Sliding-window attention is not applied to packed rows.

Tokenization: the prefix, each continuation and each answer are tokenized separately and their ids concatenated, as
``recllm.llm.scoring`` does at inference, so training sees the tokens scoring reads. A group therefore equals the
per-pair examples ``(prefix + continuation, answer)`` (:meth:`GroupedExample.pairs`) whenever the prefix ends on a
token boundary (a line break does, and the TRSR prompts end their shared part with one); :func:`pair_features`
gives the per-pair token ids it equals in every case. ``SFTConfig.max_length`` bounds every pair (prefix +
continuation + answer) as in the per-pair path: answers are cut as there, and the prefix is cut from the left by the
most any of its candidates needs. ``SFTConfig.batch_size`` counts groups, and a step's loss is the mean over all the
answer tokens of its pairs, so a grouped step and a per-pair step over the same pairs are the same update. Weighted
groups (``GroupedExample.weights``) multiply each answer token's NLL by its pair's weight before that mean (the log's
loss is then a weighted NLL); with one-token answers, as the TRSR ranker's, a group's weights sum to its token count.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from recllm.errors import UserInputError
from recllm.llm.sft import IGNORE

__all__ = ["GroupedExample", "GroupFeature", "tokenize_groups", "tokenize_grouped_epochs", "pair_features",
           "collate_groups", "is_grouped", "check_attention"]

MASK_IMPLEMENTATIONS = ("sdpa",)  # transformers attention implementations that take a boolean 4-D mask


@dataclass(frozen=True)
class GroupedExample:
    """One prompt ``prefix`` shared by many ``(continuation, answer)`` pairs, e.g. one user's prompt and candidates.

    Pair k is the SFT example ``(prefix + continuations[k][0], continuations[k][1])``, tokenized as the module
    docstring says. ``weights`` (optional, one positive number per pair) weigh the pairs' answer losses against
    each other; they are scaled to mean 1 within the group, so a group's weights sum to its number of pairs (e.g.
    class-balanced Yes/No labels: the lone positive weighs as much as all the negatives together). Every answer
    token of a pair carries the pair's weight.
    """

    prefix: str
    continuations: Sequence[tuple[str, str]]
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix:
            raise UserInputError(f"the prefix must be a non-empty string, got {self.prefix!r:.60}",
                                 "GroupedExample.prefix", "put the prompt shared by the candidates there")
        if (isinstance(self.continuations, str) or not isinstance(self.continuations, Sequence)
                or not self.continuations):
            raise UserInputError(f"continuations must be a non-empty list of (continuation, answer) pairs, got "
                                 f"{self.continuations!r:.60}", "GroupedExample.continuations",
                                 "give every group at least one candidate (leave empty groups out)")
        for k, pair in enumerate(self.continuations):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise UserInputError(f"expected a (continuation: str, answer: str) pair, got {pair!r:.60}",
                                     f"GroupedExample.continuations[{k}]")
        object.__setattr__(self, "continuations", tuple((c, a) for c, a in self.continuations))
        if self.weights is not None:
            numeric = (isinstance(self.weights, Sequence) and not isinstance(self.weights, str)
                       and all(isinstance(w, numbers.Real) and not isinstance(w, bool) for w in self.weights))
            weights = tuple(float(w) for w in self.weights) if numeric else ()
            if len(weights) != len(self.continuations) or not all(math.isfinite(w) and w > 0 for w in weights):
                raise UserInputError(f"expected {len(self.continuations)} positive finite weights (one per pair), "
                                     f"got {self.weights!r:.60}", "GroupedExample.weights",
                                     "give one weight > 0 per continuation, or None for equal weights")
            top = max(weights)  # scaled by the largest first, so a sum of huge weights cannot overflow
            mean = sum(w / top for w in weights) / len(weights)
            object.__setattr__(self, "weights", tuple(w / top / mean for w in weights))

    def pairs(self) -> list[tuple[str, str]]:
        """The group as per-pair ``(prompt, answer)`` SFT examples (without its ``weights``: a pair has none, so
        train a weighted group as a group)."""
        return [(self.prefix + c, a) for c, a in self.continuations]


class GroupFeature(NamedTuple):
    """A tokenized group, shaped like a tokenized pair: ``context`` (the prefix then every continuation) and
    ``answers`` (every answer, EOS included), so token and target counts read it as they read a pair; ``n_prefix``
    and ``sizes`` (continuation and answer length per pair) say where each piece lies; ``weights`` (None: equal) the
    loss weight of each pair's answer tokens (mean 1 within the group)."""

    context: list[int]
    answers: list[int]
    n_prefix: int
    sizes: tuple[tuple[int, int], ...]
    weights: tuple[float, ...] | None = None

    def blocks(self) -> list[tuple[list[int], list[int]]]:
        """``(continuation_ids, answer_ids)`` per pair."""
        out, c, a = [], self.n_prefix, 0
        for n_cont, n_answer in self.sizes:
            out.append((self.context[c:c + n_cont], self.answers[a:a + n_answer]))
            c, a = c + n_cont, a + n_answer
        return out


def is_grouped(examples: Any) -> bool:
    """Whether ``examples`` is a list of grouped examples (judged by its first item)."""
    return isinstance(examples, (list, tuple)) and bool(examples) and isinstance(examples[0], GroupedExample)


def tokenize_groups(tokenizer: Any, groups: Sequence[GroupedExample], max_length: int, append_eos: bool = True
                    ) -> tuple[list[GroupFeature], dict[str, int]]:
    """One :class:`GroupFeature` per group (answers + EOS unless not ``append_eos``), every pair cut to
    ``max_length`` tokens; the counts of pairs whose prompt (a group's prefix) or answer was cut are returned."""
    if not isinstance(groups, (list, tuple)) or not groups:
        raise UserInputError("no grouped examples", "sft examples", "pass a non-empty list of GroupedExample")
    for g, group in enumerate(groups):
        if not isinstance(group, GroupedExample):
            raise UserInputError(f"expected a GroupedExample, got {type(group).__name__}", f"sft example {g}",
                                 "do not mix grouped examples with other kinds (a pair is a group of one)")
    eos = tokenizer.eos_token_id
    prefixes = tokenizer([g.prefix for g in groups], add_special_tokens=False)["input_ids"]
    conts = iter(tokenizer([c for g in groups for c, _ in g.continuations], add_special_tokens=False)["input_ids"])
    answers = iter(tokenizer([a for g in groups for _, a in g.continuations], add_special_tokens=False)["input_ids"])
    stats = {"examples": 0, "groups": len(groups), "prompts_truncated": 0, "answers_truncated": 0}
    features = []
    for g, (group, prefix) in enumerate(zip(groups, prefixes)):
        blocks, room = [], len(prefix)
        for k in range(len(group.continuations)):
            cont, answer = list(next(conts)), list(next(answers)) + ([eos] if eos is not None and append_eos else [])
            where = f"sft example {g}, continuation {k}"
            if not cont:
                raise UserInputError("the continuation has no tokens", where,
                                     "give every candidate some text (what all share belongs in the prefix)")
            if not answer:
                raise UserInputError("the answer has no tokens (and append_eos is False)", where,
                                     "give a non-empty answer")
            if len(answer) > max_length - 1:
                answer = answer[: max_length - 1]
                stats["answers_truncated"] += 1
            room = min(room, max_length - len(cont) - len(answer))
            if room < 1:
                raise UserInputError(f"continuation + answer take {len(cont) + len(answer)} tokens, leaving none "
                                     f"of max_length={max_length} for the prefix", where,
                                     "raise SFTConfig.max_length or shorten the continuation")
            blocks.append((cont, answer))
        if room < len(prefix):
            prefix = prefix[len(prefix) - room:]
            stats["prompts_truncated"] += len(blocks)
        stats["examples"] += len(blocks)
        context = list(prefix) + [t for c, _ in blocks for t in c]
        features.append(GroupFeature(context, [t for _, a in blocks for t in a], len(prefix),
                                     tuple((len(c), len(a)) for c, a in blocks),
                                     None if group.weights is None else tuple(group.weights)))
    return features, stats


def pair_features(features: Sequence[GroupFeature]) -> list[tuple[list[int], list[int]]]:
    """The per-pair features ``(prefix_ids + continuation_ids, answer_ids)`` of tokenized groups (for
    ``recllm.llm.sft.collate``): the examples a group's loss equals."""
    return [(f.context[:f.n_prefix] + cont, answer) for f in features for cont, answer in f.blocks()]


def collate_groups(features: Sequence[GroupFeature], pad_id: int) -> dict[str, torch.Tensor]:
    """One left-padded packed row per group, laid out ``prefix, every continuation but its last token, then per pair
    (its continuation's last token, its answer)``: ``input_ids``, ``position_ids`` (each pair continuing from the
    prefix), a boolean 4-D ``attention_mask`` ``(B, 1, W, W)`` (True: may attend), ``labels`` (the answer tokens
    where they stand, -100 elsewhere, as ``recllm.llm.sft.collate`` labels them) and ``token_mask`` (1 on real
    tokens); when any group has weights, also ``label_weights`` (each answer token's pair weight, 0 elsewhere)."""
    rows, weighted = [], any(f.weights is not None for f in features)
    for feature in features:
        n_prefix = feature.n_prefix
        ids, pos, seg = feature.context[:n_prefix], list(range(n_prefix)), [0] * n_prefix
        tail_ids, tail_pos, tail_seg, tail_labels, tail_weights = [], [], [], [], []
        pair_weights = feature.weights or (1.0,) * len(feature.sizes)
        for k, ((cont, answer), w) in enumerate(zip(feature.blocks(), pair_weights), start=1):
            ids += cont[:-1]
            pos += range(n_prefix, n_prefix + len(cont) - 1)
            seg += [k] * (len(cont) - 1)
            tail_ids += [cont[-1]] + answer
            tail_pos += range(n_prefix + len(cont) - 1, n_prefix + len(cont) + len(answer))
            tail_seg += [k] * (len(answer) + 1)
            tail_labels += [IGNORE] + answer
            tail_weights += [0.0] + [w] * len(answer)
        rows.append((ids + tail_ids, pos + tail_pos, seg + tail_seg, tail_labels, tail_weights))
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -1, dtype=torch.long)  # padding: a segment of its own
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    label_weights = torch.zeros((len(rows), width), dtype=torch.float32)
    for b, (row_ids, row_pos, row_seg, row_labels, row_weights) in enumerate(rows):
        n = len(row_ids)
        ids[b, width - n:] = torch.tensor(row_ids)
        pos[b, width - n:] = torch.tensor(row_pos)
        seg[b, width - n:] = torch.tensor(row_seg)
        labels[b, width - len(row_labels):] = torch.tensor(row_labels)
        label_weights[b, width - len(row_weights):] = torch.tensor(row_weights, dtype=torch.float32)
    # query i sees key j when j is in the prefix or in i's own pair, and not later in that sequence; padding sees
    # padding only, so every query keeps at least one key and no softmax runs over nothing
    key_seg, query_seg = seg[:, None, :], seg[:, :, None]
    allowed = ((key_seg == 0) | (key_seg == query_seg)) & (pos[:, None, :] <= pos[:, :, None])
    out = {"input_ids": ids, "attention_mask": allowed[:, None], "position_ids": pos, "labels": labels,
           "token_mask": (seg >= 0).long()}
    if weighted:
        out["label_weights"] = label_weights
    return out


def check_attention(model: Any) -> None:
    """Raise unless ``model``'s attention implementation takes the boolean 4-D mask of packed groups."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    impl = getattr(base.config, "_attn_implementation", None) or "sdpa"
    if impl not in MASK_IMPLEMENTATIONS:
        raise UserInputError(f"grouped examples need a 4-D attention mask, which attn_implementation={impl!r} does "
                             "not take", "the model's config", "load the model with attn_implementation='sdpa', "
                             "or train on (prompt, answer) pairs")


def tokenize_grouped_epochs(tokenizer: Any, groups: Sequence[GroupedExample], epochs: int, max_length: int,
                            append_eos: bool = True) -> tuple[list[list[GroupFeature]], dict[str, int], list[Any]]:
    """``(features of each epoch, truncation counts, examples to hash)`` for ``sft_train``, as
    ``recllm.llm.sft_segments.tokenize_epochs`` gives them for pairs: the groups are tokenized once."""
    features, stats = tokenize_groups(tokenizer, groups, max_length, append_eos)
    hashed = [[g.prefix, [list(pair) for pair in g.continuations]]
              + ([[round(w, 12) for w in g.weights]] if g.weights is not None else []) for g in groups]
    return [features] * epochs, stats, hashed
