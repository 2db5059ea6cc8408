"""Greedy generation: matches a hand-rolled greedy loop, is batch-invariant, honours constraints and the cache."""

from __future__ import annotations

import pytest
import torch

from recllm.llm.backbone import CausalLM, chat_prompt
from recllm.llm.generate import eos_token_ids, generate

QUESTIONS = ["What is 2 + 2?", "Name a film about space travel and explain why.", "Hi", "Age of the user?"]


def _manual_greedy(lm: CausalLM, prompt: str, max_new_tokens: int, allowed: list[int] | None = None) -> str:
    ids = lm.tokenizer(prompt, add_special_tokens=False).input_ids
    eos = eos_token_ids(lm)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = lm.model(torch.tensor([ids + new])).logits[0, -1]
            if allowed is not None:
                keep = torch.tensor(sorted(set(allowed + eos)))
                masked = torch.full_like(logits, float("-inf"))
                masked[keep] = logits[keep]
                logits = masked
            token = int(logits.argmax())
            if token in eos:
                break
            new.append(token)
    return lm.tokenizer.decode(new, skip_special_tokens=True)


@pytest.fixture(scope="module")
def prompts(tiny_lm: CausalLM) -> list[str]:
    return [chat_prompt(tiny_lm, q) for q in QUESTIONS]


def test_matches_a_manual_greedy_loop_in_any_batch_layout(tiny_lm: CausalLM, prompts: list[str]) -> None:
    expected = [_manual_greedy(tiny_lm, p, 6) for p in prompts]
    assert generate(tiny_lm, prompts, max_new_tokens=6, batch_size=3, show_progress=False) == expected
    assert generate(tiny_lm, prompts, max_new_tokens=6, batch_size=1, show_progress=False) == expected
    assert all(isinstance(t, str) for t in expected) and any(expected)
    n_tokens = [len(tiny_lm.tokenizer(t, add_special_tokens=False).input_ids) for t in expected]
    assert max(n_tokens) <= 7  # decoding then re-encoding may merge or split one token at most


def test_allowed_tokens_constrain_every_new_token(tiny_lm: CausalLM, prompts: list[str]) -> None:
    digits = tiny_lm.tokenizer.convert_tokens_to_ids([str(d) for d in range(10)])
    out = generate(tiny_lm, prompts, max_new_tokens=5, batch_size=4, allowed_token_ids=digits, show_progress=False)
    for text, prompt in zip(out, prompts):
        assert text == "" or text.isdigit()
        assert text == _manual_greedy(tiny_lm, prompt, 5, allowed=digits)
    assert any(out)


def test_eos_stops_generation(tiny_lm: CausalLM, prompts: list[str]) -> None:
    # Only EOS is allowed, so the first step ends every sequence with nothing generated.
    assert generate(tiny_lm, prompts, max_new_tokens=8, allowed_token_ids=[], show_progress=False) == [""] * 4


def test_cache_is_used_and_keyed_on_settings(tiny_lm: CausalLM, prompts: list[str], dict_cache, monkeypatch) -> None:
    twice = prompts + prompts[:2]
    hits: list[int] = []
    first = generate(tiny_lm, twice, max_new_tokens=4, batch_size=2, cache=dict_cache, show_progress=False,
                     on_cache_hits=hits.append)
    assert dict_cache.puts == len(prompts)  # duplicates generated once
    assert hits == [0]  # a duplicate generated in the same call is not a cache hit
    assert first[-2:] == first[:2]

    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran although every answer was cached")

    with monkeypatch.context() as patch:
        patch.setattr(tiny_lm.model, "generate", no_forward)
        assert generate(tiny_lm, twice, max_new_tokens=4, cache=dict_cache, show_progress=False,
                        on_cache_hits=hits.append) == first
    assert hits == [0, len(twice)]  # every prompt, duplicates counted
    generate(tiny_lm, prompts[:1], max_new_tokens=3, cache=dict_cache, show_progress=False, on_cache_hits=hits.append)
    assert hits[-1] == 0
    assert dict_cache.puts == len(prompts) + 1  # a different max_new_tokens is a different entry


def test_bad_arguments(tiny_lm: CausalLM) -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        generate(tiny_lm, "one prompt")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(tiny_lm, ["x"], allowed_token_ids=[-1])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny_lm, ["x"], max_new_tokens=0)
    assert generate(tiny_lm, [], show_progress=False) == []


def test_works_with_the_real_disk_cache(tiny_lm: CausalLM, prompts: list[str], tmp_path) -> None:
    from recllm.llm.cache import DiskCache

    first = generate(tiny_lm, prompts, max_new_tokens=3, cache=DiskCache(tmp_path / "c.sqlite"), show_progress=False)
    reopened = DiskCache(tmp_path / "c.sqlite")
    assert len(reopened) == len(prompts)
    assert generate(tiny_lm, prompts, max_new_tokens=3, cache=reopened, show_progress=False) == first


def test_batches_are_as_wide_as_memory_allows_and_progress_adds_up(tiny_lm: CausalLM, prompts: list[str],
                                                                     monkeypatch) -> None:
    import sys

    gen = sys.modules["recllm.llm.generate"]  # (recllm.llm.generate the attribute is the function)
    widths: list[int] = []
    real = gen._generate_batch
    monkeypatch.setattr(gen, "_generate_batch", lambda lm, batch, *a, **k: widths.append(len(batch)) or real(
        lm, batch, *a, **k))
    expected = [_manual_greedy(tiny_lm, p, 5) for p in prompts]
    steps: list[float] = []
    assert generate(tiny_lm, prompts, max_new_tokens=5, show_progress=False, progress=steps.append) == expected
    assert widths == [len(prompts)]  # batch_size=None: one batch, memory allows it
    assert len(steps) > 1 and sum(steps) == pytest.approx(len(prompts))  # moves during decoding, adds up
    # less memory, narrower batches, same answers
    monkeypatch.setattr(gen, "MAX_BATCH_ELEMENTS", 1)
    monkeypatch.setattr(gen, "_free_bytes", lambda: 0)
    assert gen.batch_rows(tiny_lm, 20, 5) == 1
    widths.clear()
    assert generate(tiny_lm, prompts, max_new_tokens=5, show_progress=False) == expected and widths == [1] * 4
    # wide rows fit fewer per batch; batch_size caps the width
    monkeypatch.setattr(gen, "MAX_BATCH_ELEMENTS", 10**9)
    assert gen.batch_rows(tiny_lm, 4000, 64) < gen.batch_rows(tiny_lm, 40, 64) == gen.MAX_GENERATE_ROWS
    assert gen.batch_rows(tiny_lm, 40, 64, limit=3) == 3
