"""Cut a user's chronological history into blocks and render item text to a token budget.

LLM-TRSR summarises a long, text-rich history block by block (blocks of 5 items, at most 5 blocks in the paper).
Block boundaries are fixed at multiples of ``block_size`` counted from the user's first item, and the newest
``max_blocks`` blocks are kept (the newest one may be partial). Anchoring the boundaries at the start means that
appending one interaction changes only the newest block, so the summaries of older blocks stay valid and come
from the cache when the same user is summarised for training, validation and test.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SegmentConfig", "clean_item_text", "render_item_texts", "segment_history", "segment_histories"]

ELLIPSIS = "..."
_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SegmentConfig:
    """How histories are cut and how much text each item may use.

    ``block_size`` items per block, at most ``max_blocks`` blocks (the most recent kept), each item's text cut to
    ``item_tokens`` tokens of the summarising model's tokenizer.
    """

    block_size: int = 5
    max_blocks: int = 5
    item_tokens: int = 32

    def __post_init__(self) -> None:
        for name in ("block_size", "max_blocks", "item_tokens"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SegmentConfig.{name} must be a positive integer, got {value!r}")
        if self.item_tokens < 4:
            raise ValueError(f"SegmentConfig.item_tokens must be at least 4 to leave room for text, got "
                             f"{self.item_tokens}")

    @property
    def max_items(self) -> int:
        """The most items a segmented history can hold."""
        return self.block_size * self.max_blocks


def segment_history(history: Sequence[int] | np.ndarray, config: SegmentConfig = SegmentConfig()) -> list[np.ndarray]:
    """Blocks of item indices, oldest block first, each oldest item first.

    Boundaries fall at multiples of ``config.block_size`` from the first item; only the newest ``max_blocks`` blocks
    are returned. An empty history gives no blocks.
    """
    items = np.asarray(history, dtype=np.int64).reshape(-1)
    if items.size == 0:
        return []
    starts = np.arange(0, items.size, config.block_size)[-config.max_blocks:]
    return [items[s:s + config.block_size] for s in starts]


def segment_histories(histories: Sequence[Sequence[int] | np.ndarray],
                      config: SegmentConfig = SegmentConfig()) -> list[list[np.ndarray]]:
    """:func:`segment_history` for every history, in order."""
    return [segment_history(h, config) for h in histories]


def clean_item_text(text: Any) -> str:
    """Plain one-line text: HTML tags and entities removed, whitespace collapsed; ``None``/NaN become ``""``."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    text = html.unescape(_TAG.sub(" ", str(text)))
    return _SPACE.sub(" ", text).strip()


def render_item_texts(texts: Sequence[str], tokenizer: Any, max_tokens: int, batch_size: int = 1024) -> list[str]:
    """Each text cleaned and cut to at most ``max_tokens`` tokens of ``tokenizer``.

    A cut text ends at a word boundary (when one lies in the last third of the kept tokens) followed by ``...``;
    the result re-tokenises to ``max_tokens`` tokens or fewer. ``tokenizer`` is a Hugging Face tokenizer.
    """
    if max_tokens < 4:
        raise ValueError(f"max_tokens must be at least 4, got {max_tokens}")
    cleaned = [clean_item_text(t) for t in texts]
    out: list[str] = []
    for start in range(0, len(cleaned), batch_size):
        chunk = cleaned[start:start + batch_size]
        ids = tokenizer(chunk, add_special_tokens=False)["input_ids"] if chunk else []
        for text, toks in zip(chunk, ids):
            out.append(text if len(toks) <= max_tokens else _truncate(text, toks, tokenizer, max_tokens))
    return out


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _truncate(text: str, ids: list[int], tokenizer: Any, max_tokens: int) -> str:
    """The longest clean prefix of ``text`` plus an ellipsis that fits ``max_tokens`` tokens."""
    reserve = _n_tokens(tokenizer, " " + ELLIPSIS)
    keep = max(1, max_tokens - reserve)
    while True:
        head = tokenizer.decode(ids[:keep], skip_special_tokens=True).rstrip()
        cut = head.rfind(" ")
        if cut >= int(len(head) * 2 / 3):
            head = head[:cut]
        head = head.rstrip(" ,;:-")
        candidate = f"{head} {ELLIPSIS}" if head else ELLIPSIS
        if _n_tokens(tokenizer, candidate) <= max_tokens or keep == 1:
            return candidate
        keep -= 1
