"""Shape-constrained number generation: the shape is read from the data and every answer keeps it."""

from __future__ import annotations

import re

import pytest

from recllm.llm.backbone import CausalLM, chat_prompt
from recllm.llm.generate import generate
from recllm.llm.number_shape import NumberShape


def test_shape_spans_the_observed_numbers() -> None:
    assert NumberShape.of(["61833.9", "13996.5", "79484.8"]) == NumberShape(5, 5, 1, False)
    assert NumberShape.of(["7", "-12", "3.25"]) == NumberShape(1, 2, 2, True)
    assert NumberShape.of(["1e-07"]) is None  # not plain decimal notation: no shape is imposed
    assert NumberShape.of([]) is None
    with pytest.raises(ValueError, match="min_int_digits"):
        NumberShape(3, 2)


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
