"""`recllm demo`: its section registry, and the LEARN and LLM-TRSR sections end to end on real data (kept small)."""

import numpy as np
import pytest

from recllm.demo import SECTIONS, run_demo


@pytest.fixture(scope="module")
def tiny():
    from recllm.llm import tiny_causal_lm

    return tiny_causal_lm(seed=0)


def test_sections_run_in_declared_order_and_unknown_names_fail():
    assert list(SECTIONS) == ["baselines", "impute", "learn", "trsr", "serve"]
    with pytest.raises(ValueError, match="unknown demo section"):
        run_demo(sections=["baselines", "nope"])


@pytest.mark.integration
def test_learn_section_on_real_cold_start_split_then_from_cache(shared_data, tmp_path, monkeypatch, capsys):
    from recllm.learn.demo import demo_section

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    content = np.random.default_rng(0).normal(size=(1682, 16)).astype(np.float32)
    rows = demo_section(seed=0, show_progress=False, max_epochs=1, content=content)
    assert [r["model"] for r in rows] == ["SASRec (IDs only)", "LEARN (frozen-LLM content)"]
    out = capsys.readouterr().out
    assert "cold-start split" in out and "LEARN's top 5 for user" in out and "(cached)" not in out
    assert demo_section(seed=0, show_progress=False, max_epochs=1, content=content) == rows
    assert "(cached)" in capsys.readouterr().out


@pytest.mark.integration
def test_trsr_section_on_real_magazines(shared_data, tiny, tmp_path, monkeypatch, capsys):
    from recllm.trsr.demo import demo_section

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    rows = demo_section(seed=0, show_progress=False, n_users=3, model=tiny)
    assert [r["method"] for r in rows] == ["popularity", "LLM zero-shot (hierarchical summary)"]
    out = capsys.readouterr().out
    assert "prompt injection" in out and "summary of a user" in out
