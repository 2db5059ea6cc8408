"""Continuation scoring: the shared-prefix KV-cache path equals the full-sequence path and a manual forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recllm.llm import scoring
from recllm.llm.backbone import CausalLM, tiny_causal_lm
from recllm.llm.scoring import (
    next_token_logprobs,
    next_token_logprobs_many,
    score_continuations,
    score_continuations_many,
    yes_probability,
)

PREFIX = "<|im_start|>user\nThe user watched: Alien; Blade Runner; Solaris.\nCandidate:"
CONTINUATIONS = [
    " Gattaca",
    " The Shawshank Redemption, a drama about hope and friendship in a prison",
    "",
    " Moon (2009)",
    " Interstellar<|im_end|>\n<|im_start|>assistant\n",
    " a",
    " Arrival, in which a linguist learns to talk to visitors<|im_end|>\n",
]


def _manual_logprobs(lm: CausalLM, prefix: str, continuation: str) -> tuple[float, torch.Tensor]:
    """Sum of continuation log-probs and the next-token log-softmax from one unpadded full forward."""
    p = lm.tokenizer(prefix, add_special_tokens=False).input_ids
    c = lm.tokenizer(continuation, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = lm.model(torch.tensor([p + c])).logits[0].double().log_softmax(-1)
    total = sum(logp[len(p) - 1 + j, tok].item() for j, tok in enumerate(c))
    return total, logp[-1]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_shared_and_full_paths_agree(tiny_lm: CausalLM, batch_size: int) -> None:
    shared = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, shared_prefix=True, batch_size=batch_size)
    full = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, shared_prefix=False, batch_size=batch_size)
    assert shared.shape == (len(CONTINUATIONS),)
    np.testing.assert_allclose(shared, full, atol=1e-4, rtol=0)
    ids = [10539, 5230, 0]
    shared_next = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS, ids, shared_prefix=True, batch_size=batch_size)
    full_next = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS, ids, shared_prefix=False, batch_size=batch_size)
    assert shared_next.shape == (len(CONTINUATIONS), 3) and shared_next.dtype == np.float32
    np.testing.assert_allclose(shared_next, full_next, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fallback", ["no_logits_to_keep", "copied_cache"])
def test_fallback_paths_give_the_same_numbers(tiny_lm: CausalLM, monkeypatch, fallback: str) -> None:
    ids = [10539, 5230]
    expected_next = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS, ids, batch_size=3)
    expected_sum = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, batch_size=3)
    if fallback == "no_logits_to_keep":  # models whose forward cannot project only some positions
        monkeypatch.setattr(scoring, "_accepts_logits_to_keep", lambda model_type: False)
    else:  # caches other than plain dynamic layers are deep-copied and repeated instead of viewed
        import transformers.cache_utils

        monkeypatch.setattr(transformers.cache_utils, "DynamicLayer", type("OtherLayer", (), {}))
    for shared in (True, False):
        got = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS, ids, shared_prefix=shared, batch_size=3)
        np.testing.assert_allclose(got, expected_next, atol=1e-4)
        got_sum = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, shared_prefix=shared, batch_size=3)
        np.testing.assert_allclose(got_sum, expected_sum, atol=1e-4)


def test_scores_match_a_manual_forward(tiny_lm: CausalLM) -> None:
    scores = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, batch_size=4)
    ids = [10539, 5230]
    nxt = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS, ids, batch_size=4)
    for i, cont in enumerate(CONTINUATIONS):
        total, last = _manual_logprobs(tiny_lm, PREFIX, cont)
        assert scores[i] == pytest.approx(total, abs=1e-4)
        np.testing.assert_allclose(nxt[i], last[ids].numpy(), atol=1e-4)
    assert scores[CONTINUATIONS.index("")] == 0.0
    assert np.all(scores[[i for i, c in enumerate(CONTINUATIONS) if c]] < 0)


def test_score_is_the_chain_rule_sum(tiny_lm: CausalLM) -> None:
    # log P(" a b" | prefix) = log P(" a" | prefix) + log P(" b" | prefix + " a"), when " a b" tokenizes as " a" + " b".
    tok = tiny_lm.tokenizer
    assert tok(" a b", add_special_tokens=False).input_ids == tok(" a", add_special_tokens=False).input_ids + tok(
        " b", add_special_tokens=False
    ).input_ids
    whole = score_continuations(tiny_lm, PREFIX, [" a b"])[0]
    first = score_continuations(tiny_lm, PREFIX, [" a"])[0]
    second = score_continuations(tiny_lm, PREFIX + " a", [" b"])[0]
    assert whole == pytest.approx(first + second, abs=1e-4)


def test_yes_probability_is_the_two_way_softmax(tiny_lm: CausalLM) -> None:
    yes, no = tiny_lm.tokenizer.convert_tokens_to_ids(["Yes", "No"])
    lp = next_token_logprobs(tiny_lm, PREFIX, CONTINUATIONS[:3], [yes, no])
    p = yes_probability(lp)
    with torch.no_grad():
        ids = tiny_lm.tokenizer(PREFIX + CONTINUATIONS[0], add_special_tokens=False, return_tensors="pt").input_ids
        logits = tiny_lm.model(ids).logits[0, -1]
    manual = torch.softmax(logits[[yes, no]].double(), -1)[0].item()
    assert p[0] == pytest.approx(manual, abs=1e-5)
    assert np.all((p > 0) & (p < 1))


def test_many_prefixes_match_one_at_a_time(tiny_lm: CausalLM) -> None:
    groups = [(PREFIX, CONTINUATIONS[:4]), ("<|im_start|>user\nOther user:", CONTINUATIONS[2:])]
    many = next_token_logprobs_many(tiny_lm, groups, [10539, 5230], batch_size=2, show_progress=False)
    for (prefix, conts), got in zip(groups, many):
        np.testing.assert_array_equal(got, next_token_logprobs(tiny_lm, prefix, conts, [10539, 5230], batch_size=2))
    sums = score_continuations_many(tiny_lm, groups, show_progress=False)
    np.testing.assert_array_equal(sums[1], score_continuations(tiny_lm, groups[1][0], groups[1][1]))


def test_memory_budget_splits_batches_without_changing_results(tiny_lm: CausalLM, monkeypatch) -> None:
    reference = score_continuations(tiny_lm, PREFIX, CONTINUATIONS)
    lengths = [1, 1, 2, 9, 0]
    monkeypatch.setattr(scoring, "MAX_BATCH_ELEMENTS", 30)
    batches = scoring._sub_batches(lengths, batch_size=64, row_cost=lambda width: width + 5)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)  # shortest first
    assert all(len(b) * (5 + max(lengths[i] for i in b)) <= 30 or len(b) == 1 for b in batches)
    assert len(batches) > 1
    monkeypatch.setattr(scoring, "MAX_BATCH_ELEMENTS", 1)  # one row per forward
    np.testing.assert_allclose(score_continuations(tiny_lm, PREFIX, CONTINUATIONS), reference, atol=1e-5)
    full = score_continuations(tiny_lm, PREFIX, CONTINUATIONS, shared_prefix=False)
    np.testing.assert_allclose(full, reference, atol=1e-4)


def test_shared_prefix_works_through_a_lora_adapter() -> None:
    from peft import LoraConfig, get_peft_model

    lm = tiny_causal_lm(seed=5)
    plain = next_token_logprobs(lm, PREFIX, CONTINUATIONS, [10539, 5230], batch_size=3)
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    wrapped = CausalLM(model.eval(), lm.tokenizer, lm.name, lm.device, lm.dtype)
    shared = next_token_logprobs(wrapped, PREFIX, CONTINUATIONS, [10539, 5230], batch_size=3)
    full = next_token_logprobs(wrapped, PREFIX, CONTINUATIONS, [10539, 5230], shared_prefix=False, batch_size=3)
    np.testing.assert_allclose(shared, full, atol=1e-4)
    with model.disable_adapter():
        np.testing.assert_allclose(next_token_logprobs(wrapped, PREFIX, CONTINUATIONS, [10539, 5230]), plain, atol=1e-5)
    assert np.abs(shared - plain).max() > 1e-3  # the adapter changes the answers


def test_bad_input_is_rejected(tiny_lm: CausalLM) -> None:
    with pytest.raises(ValueError, match="prefix is empty"):
        score_continuations(tiny_lm, "", ["x"])
    with pytest.raises(ValueError, match="token_ids"):
        next_token_logprobs(tiny_lm, PREFIX, ["x"], [len(tiny_lm.tokenizer) + 5])
    with pytest.raises(TypeError, match="sequence of strings"):
        score_continuations(tiny_lm, PREFIX, "one string")
    with pytest.raises(ValueError, match="batch_size"):
        score_continuations(tiny_lm, PREFIX, ["x"], batch_size=0)
    assert score_continuations(tiny_lm, PREFIX, []).shape == (0,)
    assert next_token_logprobs(tiny_lm, PREFIX, [], [1, 2]).shape == (0, 2)
