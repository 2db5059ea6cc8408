"""Shape-constrained number generation: the shape is read from the data and every answer keeps it."""

from __future__ import annotations

import re

import pytest

from recllm.llm.backbone import CausalLM, chat_prompt
from recllm.llm.generate import generate
from recllm.llm.number_shape import NumberShape


def test_shape_spans_the_observed_numbers() -> None:
    assert NumberShape.of(["61833.9", "13996.5", "79484.8"]) == NumberShape(5, 5, 1, False, 13996.5, 79484.8)
    assert NumberShape.of(["7", "-12", "3.25"]) == NumberShape(1, 2, 2, True, -12.0, 7.0)
    assert NumberShape.of(["1e-07"]) is None  # not plain decimal notation: no shape is imposed
    assert NumberShape.of([]) is None
    with pytest.raises(ValueError, match="min_int_digits"):
        NumberShape(3, 2)
    with pytest.raises(ValueError, match="above"):
        NumberShape(low=5.0, high=1.0)


@pytest.mark.parametrize("text,prefix,complete", [
    (" ", True, False), ("", True, False), (" 6", True, False), (" 6183", True, False), (" 61833", True, True),
    (" 61833.", True, False), (" 61833.9", True, True), (" 61833.95", False, False), (" 618330", False, False),
    (" 618.3", False, False), (" -6", False, False), (" 06183", False, False), (" 61 8", False, False),
    ("  6", False, False), (" .5", False, False),
])
def test_prefixes_and_complete_numbers(text: str, prefix: bool, complete: bool) -> None:
    shape = NumberShape(5, 5, 1, False)
    assert shape.accepts_prefix(text) is prefix
    assert shape.accepts(text) is complete


def test_generation_keeps_every_answer_in_shape(tiny_lm: CausalLM) -> None:
    """A random tiny model writes numbers of any length; with the shape, each is 3-4 digits, at most 1 decimal."""
    tok = tiny_lm.tokenizer
    numeric = [i for i in range(len(tok)) if re.fullmatch(r" ?[0-9.\-]*", tok.decode([i])) and tok.decode([i])]
    prompts = [chat_prompt(tiny_lm, q) for q in ("Income?", "Age?", "Year of the film?", "Hi", "x")]
    shape = NumberShape(3, 4, 1, False)
    free = generate(tiny_lm, prompts, max_new_tokens=8, batch_size=2, allowed_token_ids=numeric,
                    show_progress=False)
    shaped = generate(tiny_lm, prompts, max_new_tokens=8, batch_size=2, allowed_token_ids=numeric,
                      number_shape=shape, show_progress=False)
    assert any(not shape.accepts(t) for t in free)  # the constraint has something to do
    assert all(shape.accepts(t) for t in shaped), shaped
    with pytest.raises(ValueError, match="allowed_token_ids"):
        generate(tiny_lm, prompts, max_new_tokens=4, number_shape=shape, show_progress=False)


@pytest.mark.parametrize("text,prefix,complete", [
    (" ", True, False), (" 3", True, False), (" 2", False, False), (" 9", True, False), (" 92", False, False),
    (" 91", True, True), (" 91.6", False, False), (" 91.5", True, True), (" 32", True, True), (" 31", False, False),
    (" 31.9", False, False), (" 4", True, False), (" 45.25", True, True),
])
def test_values_stay_in_the_observed_range(text: str, prefix: bool, complete: bool) -> None:
    """daily_time_spent-like column: 32.0 to 91.5, two integer digits, up to two decimals."""
    shape = NumberShape.of(["32", "45.25", "91.5"])
    assert (shape.low, shape.high) == (32.0, 91.5)
    assert shape.accepts_prefix(text) is prefix
    assert shape.accepts(text) is complete


def test_negative_ranges() -> None:
    shape = NumberShape.of(["-12", "-3", "5"])
    assert shape.accepts_prefix(" -") and shape.accepts(" -12") and not shape.accepts_prefix(" -13")
    assert shape.accepts(" 5") and not shape.accepts(" 6") and not shape.accepts_prefix(" 0.5")
    only_negative = NumberShape.of(["-20", "-10"])
    assert only_negative.accepts_prefix(" ") and not only_negative.accepts_prefix(" 1")
