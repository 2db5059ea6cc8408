"""Rows of a table as text and back: ``"age is 34, occupation is engineer"`` (the paper's serialisation).

A training example for one cell is ``(prompt, answer)``: the prompt lists the row's *other* observed cells and ends
with ``"<column> is"``; the answer is ``" <value>"``. The same prompt fills a missing cell at inference time.

Whole-row training (``LLMImputer(training="whole-row")``) writes a row as ``"column: value"`` lines instead, as
``(text, is_target)`` pieces (:func:`row_segments`), so one sequence teaches every value in it; a missing cell is
then asked for after the row's observed lines (:func:`lines_prompt`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

TEMPLATE_VERSION = "impute-row-v1"  # part of every cache key: change it when the text format changes
SEPARATOR = ", "
LINES_TEMPLATE_VERSION = "impute-lines-v1"  # the same for the whole-row "column: value" lines
LINE_SEPARATOR = "\n"


def is_missing(value: Any) -> bool:
    """True for NaN, None, pd.NA and NaT (what ``pandas.isna`` calls missing); an empty string is a value."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes are values here
        return False


def format_value(value: Any) -> str:
    """A cell as text: whole numbers without ``.0``, floats in their shortest exact form, text stripped of spaces
    and newlines (a newline would break the one-line row)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
            return str(int(number))
        return np.format_float_positional(number, trim="-")
    return " ".join(str(value).split())


def row_text(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """``"a is 1, b is x"`` over the observed cells of ``row`` in ``columns`` order."""
    return SEPARATOR.join(f"{col} is {format_value(row[col])}" for col in columns if not is_missing(row[col]))


def cell_prompt(row: Mapping[str, Any], target: str, columns: Sequence[str], context: str = "") -> str:
    """The prompt that asks for ``row[target]``: optional ``context`` line, the other observed cells, then
    ``"<target> is"``."""
    others = row_text(row, [c for c in columns if c != target])
    body = f"{others}{SEPARATOR}{target} is" if others else f"{target} is"
    return f"{context.strip()}\n{body}" if context.strip() else body


def cell_answer(value: Any) -> str:
    """The answer text for a cell (leading space, as it follows ``"... is"``)."""
    return " " + format_value(value)


def row_segments(row: Mapping[str, Any], columns: Sequence[str], targets: Collection[str] = (), end: str = "",
                 context: str = "") -> list[tuple[str, bool]]:
    """The observed cells of ``row`` as ``"column: value"`` lines in ``columns`` order, as ``(text, is_target)``
    pieces: the optional ``context`` line, each line break and ``"column:"`` are context; each value
    (:func:`cell_answer` + ``end``, e.g. the EOS text that ends an answer) is a target when its column is in
    ``targets``. Joined, the pieces read ``"a: 1<end>\\nb: x<end>"``."""
    pieces = [(f"{context.strip()}{LINE_SEPARATOR}", False)] if context.strip() else []
    first = True
    for col in columns:
        if is_missing(row[col]):
            continue
        pieces.append((f"{col}:" if first else f"{LINE_SEPARATOR}{col}:", False))
        pieces.append((cell_answer(row[col]) + end, col in targets))
        first = False
    return pieces


def lines_prompt(row: Mapping[str, Any], target: str, columns: Sequence[str], context: str = "",
                 end: str = "") -> str:
    """The whole-row prompt that asks for ``row[target]``: the row's other observed cells as lines (exactly the text
    of :func:`row_segments`), then ``"<target>:"``."""
    pieces = row_segments(row, [c for c in columns if c != target], end=end, context=context)
    body = "".join(text for text, _ in pieces)
    return f"{body}{LINE_SEPARATOR}{target}:" if len(pieces) > bool(context.strip()) else f"{body}{target}:"


def text_to_row(text: str, columns: Sequence[str]) -> dict[str, str]:
    """Parse :func:`row_text` output back into ``{column: value text}`` for the columns present.

    Columns are found as ``"<column> is "`` at the start or after ``", "`` in the given order, so values may
    themselves contain commas (movie titles do) as long as they do not contain ``", <other column> is "``.
    """
    out: dict[str, str] = {}
    pattern = "|".join(re.escape(c) for c in sorted(columns, key=len, reverse=True))
    marker = re.compile(rf"(?:^|{re.escape(SEPARATOR)})({pattern}) is ")
    found = list(marker.finditer(text))
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out[match.group(1)] = text[match.end():end]
    return out


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?|-?\.\d+")


def parse_number(text: str) -> float | None:
    """The first number in ``text`` (``" 34"`` -> 34.0, ``"-1.5x"`` -> -1.5), or None when there is none."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(0))
    return value if math.isfinite(value) else None
