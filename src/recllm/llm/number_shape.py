"""Shape-constrained number generation: the digits a column's numbers have, enforced token by token.

A lightly fine-tuned LM often writes a number of the wrong magnitude (" 618" for an income of 61833.9): greedy
decoding restricted to digit tokens still lets it stop, or go on, one digit early or late. :class:`NumberShape`
records what the observed values of a column look like (sign, how many integer digits, how many decimals) and
:class:`NumberShapeProcessor` masks, at every step, each token that would leave that shape, and EOS until the
number is complete. The model still chooses every digit; only impossible magnitudes are ruled out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

_PREFIX = re.compile(r"(-?)(\d*)(?:(\.)(\d*))?")


@dataclass(frozen=True)
class NumberShape:
    """What a column's numbers look like as text: sign allowed, integer-digit range, most decimals, and
    optionally the value range [``low``, ``high``] every answer must fall in."""

    min_int_digits: int = 1
    max_int_digits: int = 15
    max_decimals: int = 6
    negative: bool = False
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_int_digits <= self.max_int_digits:
            raise ValueError(f"need 1 <= min_int_digits <= max_int_digits, got {self.min_int_digits}, "
                             f"{self.max_int_digits}")
        if self.max_decimals < 0:
            raise ValueError(f"max_decimals must be >= 0, got {self.max_decimals}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")

    @classmethod
    def of(cls, texts: Iterable[str]) -> NumberShape | None:
        """The shape spanning every number in ``texts`` (as the table writes them); None if one is not plain
        decimal notation (e.g. ``1e-07``), since the shape could then not describe it."""
        ints, decimals, values, negative = [], [], [], False
        for text in texts:
            match = _PREFIX.fullmatch(text.strip())
            if match is None or not match.group(2) or (match.group(3) and not match.group(4)):
                return None
            negative = negative or bool(match.group(1))
            ints.append(len(match.group(2)))
            decimals.append(len(match.group(4) or ""))
            values.append(float(text))
        if not ints:
            return None
        return cls(min(ints), max(ints), max(decimals), negative, min(values), max(values))

    @staticmethod
    def _parse(text: str) -> tuple[str, str, str, str] | None:
        """(sign, integer digits, dot, decimals) of an answer so far (one optional leading space), or None."""
        body = text[1:] if text.startswith(" ") else text
        match = _PREFIX.fullmatch(body)
        if match is None:
            return None
        sign, digits, dot, decimals = match.groups()
        return sign, digits, dot or "", decimals or ""

    def accepts_prefix(self, text: str) -> bool:
        """Whether ``text`` (the generated answer so far, one optional leading space) can still become a number
        of this shape."""
        parts = self._parse(text)
        if parts is None:
            return False
        sign, digits, dot, decimals = parts
        if sign and not self.negative:
            return False
        if len(digits) > self.max_int_digits or (dot and not digits):
            return False
        if len(digits) > 1 and digits[0] == "0":  # no leading zeros: "07" is not how the table writes 7
            return False
        if dot and (self.max_decimals == 0 or len(digits) < self.min_int_digits):
            return False
        if len(decimals) > self.max_decimals:
            return False
        return self._reachable(sign, digits, bool(dot), decimals)

    def _in_range(self, low: float, high: float) -> bool:
        """Whether the closed interval [low, high] meets [self.low, self.high] (absent bounds: unbounded)."""
        tol = 1e-9 * max(1.0, abs(low), abs(high))
        return ((self.high is None or low <= self.high + tol) and (self.low is None or high >= self.low - tol))

    def _reachable(self, sign: str, digits: str, dot: bool, decimals: str) -> bool:
        """Whether some completion of this prefix (same shape) lies in [low, high]."""
        if self.low is None and self.high is None:
            return True
        step = 10.0 ** -self.max_decimals  # the finest value a completion can add
        if dot:
            start = float(f"{digits}.{decimals}" if decimals else digits)
            spans = [(start, start + 10.0 ** -len(decimals) - step)]
        else:
            spans = []
            longest = 1 if digits == "0" else self.max_int_digits  # no leading zero: "0" stays one digit
            for n in range(max(len(digits), self.min_int_digits), longest + 1):
                if digits:
                    scale = 10.0 ** (n - len(digits))
                    spans.append((int(digits) * scale, (int(digits) + 1) * scale - step))
                else:
                    spans.append((0.0 if n == 1 else 10.0 ** (n - 1), 10.0 ** n - step))
        if sign:
            signs = [True]
        elif digits or dot:
            signs = [False]
        else:
            signs = [False, True] if self.negative else [False]
        return any(self._in_range(-hi, -lo) if neg else self._in_range(lo, hi) for neg in signs for lo, hi in spans)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is a complete number of this shape (so generation may stop after it)."""
        parts = self._parse(text)
        if parts is None or not self.accepts_prefix(text):
            return False
        sign, digits, dot, decimals = parts
        if len(digits) < self.min_int_digits or (dot and not decimals):
            return False
        value = float(f"{sign}{digits}.{decimals}" if decimals else f"{sign}{digits}")
        return self._in_range(value, value)


class NumberShapeProcessor(LogitsProcessor):
    """Masks every token that would take a row's answer out of ``shape``; EOS only once the number is complete.

    ``token_texts`` maps the candidate token ids (digits, '.', '-', optionally with a leading space) to their text;
    ``prompt_length`` is where the answers start in ``input_ids`` (left-padded batch). A row that already ended
    (a token outside ``token_texts``) is left alone; a row with no valid continuation may only stop.
    """

    def __init__(self, shape: NumberShape, token_texts: dict[int, str], eos_ids: Sequence[int],
                 prompt_length: int) -> None:
        self.shape = shape
        self.token_texts = dict(token_texts)
        self.eos_ids = [int(e) for e in eos_ids]
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = scores.clone()
        for row, ids in enumerate(input_ids[:, self.prompt_length:].tolist()):
            pieces = [self.token_texts.get(i) for i in ids]
            if any(p is None for p in pieces):
                continue  # already ended (EOS / padding follows)
            so_far = "".join(pieces)  # type: ignore[arg-type]
            keep = [t for t, text in self.token_texts.items()
                    if (so_far == "" or not text.startswith(" ")) and self.shape.accepts_prefix(so_far + text)]
            if self.shape.accepts(so_far) or not keep:
                keep += self.eos_ids
            masked = torch.full_like(out[row], float("-inf"))
            index = torch.tensor(keep, dtype=torch.long, device=out.device)
            masked[index] = out[row, index]
            out[row] = masked
        return out
