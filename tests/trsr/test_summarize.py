"""Summarisers on a tiny llama: structure, batching across users, caching and resumption."""

import numpy as np
import pytest

import recllm.trsr.summarize as summ
from recllm.llm.backbone import tiny_causal_lm
from recllm.llm.cache import DiskCache
from recllm.trsr.segment import SegmentConfig
from recllm.trsr.summarize import SummarizerConfig, summarize_histories

ITEMS = [f"item number {i}" for i in range(30)]
HISTORIES = [np.arange(0, 7), np.arange(10, 12), np.arange(3, 14)]  # 2, 1 and 3 blocks of 5


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(seed=0)


@pytest.fixture
def calls(monkeypatch):
    """Record every batch of prompts handed to generate (the real generate still runs)."""
    seen = []
    real = summ.generate

    def spy(lm, prompts, **kwargs):
        seen.append(list(prompts))
        return real(lm, prompts, **kwargs)

    monkeypatch.setattr(summ, "generate", spy)
    return seen


def cfg(mode, **kw):
    return SummarizerConfig(mode=mode, max_new_tokens=3, chunk_size=64, segment=SegmentConfig(block_size=5), **kw)


def test_hierarchical_batches_all_blocks_then_merges(lm, calls):
    out = summarize_histories(lm, HISTORIES, ITEMS, cfg("hierarchical"), show_progress=False)
    assert [len(s) for s in out.steps] == [2, 1, 3]
    assert len(calls) == 2  # one batched call for the 6 blocks, one for the 2 merges
    assert len(calls[0]) == 6 and len(calls[1]) == 2
    assert all("Period 1" in p for p in calls[1])
    assert out.texts[1] == out.steps[1][0]  # a single block needs no merge
    assert out.prompts == 8 and out.generated == 8 and out.model_seconds > 0


def test_recurrent_feeds_the_previous_summary(lm, calls):
    out = summarize_histories(lm, HISTORIES, ITEMS, cfg("recurrent"), show_progress=False)
    assert [len(s) for s in out.steps] == [2, 1, 3]
    assert [len(c) for c in calls] == [3, 2, 1]  # step k batches every user that has a block k
    assert all("so far" in p for p in calls[1])
    assert any("item number 5" in p and "item number 4" not in p for p in calls[1])  # user 0's second block
    assert out.texts == [s[-1] for s in out.steps]


def test_none_mode_has_no_summaries(lm, calls):
    out = summarize_histories(lm, HISTORIES, ITEMS, cfg("none"), show_progress=False)
    assert out.texts == [None, None, None] and not calls


def test_cache_resumes_and_is_keyed_by_model(lm, calls, tmp_path):
    cache = DiskCache(tmp_path / "c.sqlite")
    first = summarize_histories(lm, HISTORIES[:1], ITEMS, cfg("hierarchical"), cache=cache, show_progress=False)
    calls.clear()
    second = summarize_histories(lm, HISTORIES, ITEMS, cfg("hierarchical"), cache=cache, show_progress=False)
    assert second.texts[0] == first.texts[0]
    assert second.generated == second.prompts - first.prompts  # user 0's prompts came from the cache
    assert second.model_seconds >= first.model_seconds
    again = summarize_histories(lm, HISTORIES, ITEMS, cfg("hierarchical"), cache=cache, show_progress=False)
    assert again.generated == 0 and again.texts == second.texts
    other = tiny_causal_lm(seed=3)
    fresh = summarize_histories(other, HISTORIES[:1], ITEMS, cfg("hierarchical"), cache=cache, show_progress=False)
    assert fresh.generated == fresh.prompts


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        SummarizerConfig(mode="tree")
    with pytest.raises(ValueError, match="max_new_tokens"):
        SummarizerConfig(max_new_tokens=0)
