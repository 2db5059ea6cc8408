"""`recllm demo`: its section registry, its sizing by the measured speed, and the LEARN, serving and LLM-TRSR
sections end to end on real data (kept small)."""

import sys
import types

import numpy as np
import pytest

from recllm import demo
from recllm.demo import IMPUTE_SIZES, SECTIONS, TEXT_ENCODERS, TRSR_USERS, Probe, plan_demo, run_demo


def _probe(tokens_per_s: float) -> Probe:
    return Probe(tokens_per_s=tokens_per_s, dtype="float32", films=1682, catalogue_tokens=30_000)


def _sizes(plan):
    return ((plan.kwargs("impute")["examples"], plan.kwargs("impute")["rate"]), plan.kwargs("learn")["encoder"],
            plan.kwargs("trsr")["n_users"], plan.kwargs("serve")["encoder"])


FULL_SIZES = (IMPUTE_SIZES[0], TEXT_ENCODERS[0], TRSR_USERS[0], TEXT_ENCODERS[0])
SMALL_SIZES = (IMPUTE_SIZES[-1], TEXT_ENCODERS[-1], TRSR_USERS[-1], TEXT_ENCODERS[-1])


def test_a_slow_probe_picks_the_small_sizes_and_says_why():
    plan = plan_demo(_probe(1.0))
    assert _sizes(plan) == SMALL_SIZES
    assert "reduced" in plan.choices["impute"].reason and "--full" in plan.choices["trsr"].reason
    assert "all-MiniLM-L6-v2" in plan.choices["learn"].reason and "1 SmolLM2 tokens/s" in plan.choices["learn"].reason


def test_a_fast_probe_or_full_picks_the_full_sizes():
    assert _sizes(plan_demo(_probe(1e9))) == FULL_SIZES
    assert "full size" in plan_demo(_probe(1e9)).choices["impute"].reason
    assert _sizes(plan_demo(_probe(1.0), full=True)) == FULL_SIZES
    assert _sizes(plan_demo(None)) == FULL_SIZES


def test_sizes_shrink_with_the_speed_and_fit_their_budget():
    """Between the extremes each step takes the largest size whose estimate fits its budget."""
    previous = None
    for speed in np.geomspace(1.0, 1e6, 40):
        probe = _probe(float(speed))
        sizes = _sizes(plan_demo(probe))
        examples, rate = sizes[0]
        impute = probe.estimate(examples * demo.WORK_TOKENS["impute_example"]
                                + probe.films * demo.IMPUTE_COLUMNS * rate * demo.WORK_TOKENS["impute_cell"])
        assert impute <= demo.BUDGET_SECONDS["impute"] or sizes[0] == IMPUTE_SIZES[-1]
        assert probe.estimate(sizes[2] * demo.WORK_TOKENS["trsr_user"]) <= demo.BUDGET_SECONDS["trsr"] \
            or sizes[2] == TRSR_USERS[-1]
        if previous is not None:  # a faster machine never gets a smaller size
            assert IMPUTE_SIZES.index(sizes[0]) <= IMPUTE_SIZES.index(previous[0])
            assert TRSR_USERS.index(sizes[2]) <= TRSR_USERS.index(previous[2])
        previous = sizes
    assert previous == FULL_SIZES


def test_run_demo_hands_each_section_its_size_from_the_probe(monkeypatch, capsys, tmp_path):
    """With the probe faked to a slow machine, every sized section is called with the small size; the probe is
    kept in the recllm cache, so the next run gets the same sizes without measuring."""
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    calls = {}
    for name in ("impute", "learn", "trsr", "serve"):
        module = types.ModuleType(f"fake_{name}")
        module.demo_section = lambda name=name, **kwargs: calls.__setitem__(name, kwargs)
        monkeypatch.setitem(sys.modules, SECTIONS[name][1], module)
    measured = Probe(tokens_per_s=1.0, dtype="float32", films=1682, catalogue_tokens=30_000,
                     compute="0.1 GFLOP/s, 5.0% of the measured float32 matmul peak (2.0 GFLOP/s on a CPU)")
    monkeypatch.setattr(demo, "measure_probe", lambda show_progress=True: measured)
    assert run_demo(sections=["impute", "learn", "trsr", "serve"], show_progress=False) == 0
    sizes = ((calls["impute"]["examples"], calls["impute"]["rate"]), calls["learn"]["encoder"],
             calls["trsr"]["n_users"], calls["serve"]["encoder"])
    assert sizes == SMALL_SIZES
    out = capsys.readouterr().out
    assert "probe: SmolLM2-135M reads 1 tokens/s" in out and "measured now" in out and out.count("size: ") == 4
    assert "(0.1 GFLOP/s, 5.0% of the measured float32 matmul peak (2.0 GFLOP/s on a CPU))" in out

    def no_probe(show_progress=True):
        raise AssertionError("the probe was measured again")

    monkeypatch.setattr(demo, "measure_probe", no_probe)
    calls.clear()
    run_demo(sections=["trsr"], show_progress=False)
    assert list(calls) == ["trsr"] and calls["trsr"]["n_users"] == TRSR_USERS[-1]
    kept = capsys.readouterr().out
    assert "kept in" in kept and "5.0% of the measured float32 matmul peak" in kept  # the kept probe says it too
    run_demo(sections=["learn", "trsr"], show_progress=False, full=True)
    assert calls["learn"]["encoder"] == TEXT_ENCODERS[0] and calls["trsr"]["n_users"] == TRSR_USERS[0]


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
    assert [r["model"] for r in rows] == ["SASRec (IDs only)", "LEARN (SmolLM2-135M item text)"]
    out = capsys.readouterr().out
    assert "cold-start split" in out and "LEARN's top 5 for user" in out and "(cached)" not in out
    # the full catalogue and the test period's new films only: where an ID model cannot rank and LEARN can
    assert "| new films: hr@10 | new films: ndcg@10 |" in out and "films the test period introduces" in out
    assert all(r["new films: hr@10"] for r in rows)
    assert demo_section(seed=0, show_progress=False, max_epochs=1, content=content) == rows
    assert "(cached)" in capsys.readouterr().out
    import recllm.utils

    # another recllm (an upgrade, an edited checkout) computes the table again rather than print this one
    monkeypatch.setattr(recllm.utils, "package_source_sha256", lambda package, exclude=(): "0" * 64)
    demo_section(seed=0, show_progress=False, max_epochs=1, content=content)
    assert "(cached)" not in capsys.readouterr().out


@pytest.mark.integration
def test_serving_reuses_the_learn_sections_model(shared_data, tmp_path, monkeypatch, capsys):
    """The serving section's artifact is the model the LEARN section trained and saved: nothing is trained again."""
    from recllm.learn import load
    from recllm.learn.demo import demo_section, learn_artifact
    from recllm.learn.train import LEARN

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    content = np.random.default_rng(1).normal(size=(1682, 16)).astype(np.float32)
    demo_section(seed=0, show_progress=False, max_epochs=1, content=content)

    def no_training(self, split):
        raise AssertionError("the serving section trained another LEARN model")

    monkeypatch.setattr(LEARN, "fit", no_training)
    folder, how = learn_artifact(seed=0, show_progress=False, max_epochs=1, content=content)
    assert "reused" in how
    retriever = load(folder)
    assert retriever.model.config.content.model == "smollm2" and len(retriever.recommend("196", k=5)) == 5


@pytest.mark.integration
def test_trsr_section_on_real_magazines(shared_data, tiny, tmp_path, monkeypatch, capsys):
    from recllm.trsr.demo import demo_section

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    rows = demo_section(seed=0, show_progress=False, n_users=3, model=tiny)
    assert [r["method"] for r in rows] == ["popularity", "LLM zero-shot (hierarchical summary)"]
    out = capsys.readouterr().out
    assert "prompt injection" in out and "summary of a user" in out
