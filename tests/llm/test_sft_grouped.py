"""Grouped SFT: many (continuation, answer) pairs behind one shared prefix train exactly like the separate pairs."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from recllm.llm.backbone import CausalLM, tiny_causal_lm
from recllm.llm.sft import (LoRAConfig, SFTConfig, _answer_loss_sum, collate, load_sft_state, sft_train,
                            tokenize_examples)
from recllm.llm.sft_grouped import GroupedExample, collate_groups, pair_features, tokenize_groups

PREFIX = "<|im_start|>user\nWhat colour is the thing below?\n"
END = "<|im_end|>\n<|im_start|>assistant\n"
GROUPS = [
    GroupedExample(PREFIX, [("the sky" + END, "blue"), ("fresh grass in spring" + END, "green"),
                            ("snow" + END, "white"), ("coal" + END, "black"), ("a ripe tomato" + END, "red")]),
    GroupedExample("<|im_start|>user\nName the colour, please.\n",
                   [("blood" + END, "red"), ("the sun at noon" + END, "yellow and bright")]),
    GroupedExample("Short.\n", [("milk" + END, "white")]),
]
FAST = dict(show_progress=False, bf16=False, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def base() -> CausalLM:
    return tiny_causal_lm(seed=0)


@pytest.fixture()
def fresh(base):
    """A new untouched copy of the tiny base model per call (sft_train injects LoRA layers in place)."""
    return lambda: dataclasses.replace(base, model=copy.deepcopy(base.model))


def lora_model(lm: CausalLM, seed: int = 0):
    """``lm``'s model with a LoRA adapter whose B matrices are random, so every LoRA weight gets a gradient."""
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(lm.model), LoRAConfig(dropout=0.0).to_peft())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model.train()


def loss_and_grads(model, batch) -> tuple[float, dict[str, torch.Tensor]]:
    """The answer-token mean loss of a batch, as a training step takes it, and its LoRA gradients."""
    loss = _answer_loss_sum(model, batch, "cpu") / int((batch["labels"] != -100).sum())
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def lora_state(lm) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(lm.model).items()}


def assert_same_loss_and_grads(model, features, pad: int, tol: float, grad_tol: float | None = None) -> None:
    """Loss within ``tol`` (relative); every LoRA gradient within ``tol`` (absolute and relative), or within
    ``grad_tol`` times that gradient's largest value when given."""
    per_pair = loss_and_grads(model, collate(pair_features(features), pad))
    grouped = loss_and_grads(model, collate_groups(features, pad))
    assert grouped[0] == pytest.approx(per_pair[0], rel=tol)
    assert grouped[1].keys() == per_pair[1].keys() and len(grouped[1]) > 0
    for name, grad in per_pair[1].items():
        scale = float(grad.abs().max())
        assert scale > 0, name  # every LoRA weight is checked on a real gradient
        if grad_tol is None:
            torch.testing.assert_close(grouped[1][name], grad, rtol=tol, atol=tol, msg=name)
        else:
            assert float((grouped[1][name] - grad).abs().max()) <= grad_tol * scale, name


def test_groups_tokenize_as_their_pairs(base):
    features, stats = tokenize_groups(base.tokenizer, GROUPS, max_length=64)
    pairs = [pair for group in GROUPS for pair in group.pairs()]
    assert pair_features(features) == tokenize_examples(base.tokenizer, pairs, max_length=64)[0]
    assert stats == {"examples": 8, "groups": 3, "prompts_truncated": 0, "answers_truncated": 0}
    assert features[0].n_prefix == len(base.tokenizer(PREFIX, add_special_tokens=False).input_ids)  # held once
    from recllm.llm import sft

    assert sft.GroupedExample is GroupedExample  # importable beside sft_train


def test_max_length_cuts_a_group_prefix_as_its_longest_pair_needs(base):
    tok = base.tokenizer
    long_prefix = "one two three four five six seven eight nine ten eleven twelve\n"
    group = GroupedExample(long_prefix, [("a", "Yes"), ("b c d", "No")])
    features, stats = tokenize_groups(tok, [group], max_length=8)
    (prompt_b, answer_b) = pair_features(features)[1]
    assert len(prompt_b) + len(answer_b) == 8  # the longest pair fills max_length exactly
    prefix_ids = tok(long_prefix, add_special_tokens=False).input_ids
    assert features[0].context[:features[0].n_prefix] == prefix_ids[-features[0].n_prefix:]  # cut from the left
    assert stats["prompts_truncated"] == 2 and stats["answers_truncated"] == 0


def test_packed_row_layout_by_hand():
    """prefix [1, 2, 3]; pair 1: continuation [4, 5], answer [6]; pair 2: continuation [7], answer [8, 9]."""
    from recllm.llm.sft_grouped import GroupFeature

    feature = GroupFeature([1, 2, 3, 4, 5, 7], [6, 8, 9], 3, ((2, 1), (1, 2)))
    other = GroupFeature([10, 11], [12], 1, ((1, 1),))
    batch = collate_groups([feature, other], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9], [0] * 6 + [10, 11, 12]]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 5]
    assert batch["position_ids"][1, 6:].tolist() == [0, 1, 2]
    x = -100
    assert batch["labels"].tolist() == [[x, x, x, x, x, 6, x, 8, 9], [x] * 8 + [12]]
    assert batch["token_mask"].tolist() == [[1] * 9, [0] * 6 + [1] * 3]
    seen = batch["attention_mask"][0, 0]
    visible = {i: [j for j in range(9) if seen[i, j]] for i in range(9)}
    assert visible[4] == [0, 1, 2, 3, 4]  # 5 (pair 1): the prefix, then 4, 5
    assert visible[5] == [0, 1, 2, 3, 4, 5]  # 6 (pair 1's answer) sees pair 1 only
    assert visible[6] == [0, 1, 2, 6]  # 7 (pair 2) sees the prefix and itself, not pair 1
    assert visible[8] == [0, 1, 2, 6, 7, 8]
    assert visible[1] == [0, 1]  # the prefix is causal and sees no pair
    padded = batch["attention_mask"][1, 0]
    assert padded.any(dim=1).all()  # padding rows keep a key (no softmax over nothing)
    assert not padded[6:, :6].any()  # real tokens never see padding


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grouped_loss_and_every_lora_gradient_equal_the_per_pair_path(base, dtype):
    features, _ = tokenize_groups(base.tokenizer, GROUPS, max_length=64)
    model = lora_model(base).to(dtype)
    assert_same_loss_and_grads(model, features, base.tokenizer.pad_token_id, tol=1e-5)
    assert_same_loss_and_grads(model, features[:1], base.tokenizer.pad_token_id, tol=1e-5)  # one row, no padding


def test_grouped_run_is_the_per_pair_run(fresh):
    """Every step holds all pairs in both runs: the same pairs, the same loss mean, the same updates."""
    pairs = [pair for group in GROUPS for pair in group.pairs()]
    lora = LoRAConfig(dropout=0.0)
    config = SFTConfig(epochs=3, learning_rate=1e-2, batch_size=len(GROUPS), **FAST)
    grouped = lora_state(sft_train(fresh(), GROUPS, config, lora))
    per_pair = lora_state(sft_train(fresh(), pairs, dataclasses.replace(config, batch_size=len(pairs)), lora))
    assert any(v.abs().max() > 0 for k, v in grouped.items() if "lora_B" in k)  # the adapter did move
    for key, value in per_pair.items():
        torch.testing.assert_close(grouped[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_grouped_resume_after_interruption_matches_an_uninterrupted_run(fresh, tmp_path):
    groups = GROUPS + [GroupedExample(PREFIX, [("night" + END, "dark"), ("an orange" + END, "orange")])]
    config = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=1, grad_accum=2, checkpoint_every=1,
                       keep_checkpoints=2, **FAST)
    lora = LoRAConfig(dropout=0.1)  # dropout draws from the RNG: its state must be restored too
    full = lora_state(sft_train(fresh(), groups, config, lora, output_dir=tmp_path / "full"))
    part = sft_train(fresh(), groups, config, lora, output_dir=tmp_path / "cut", stop_after_steps=3)
    assert load_sft_state(tmp_path / "cut")["step"] == 3  # mid-epoch (2 steps per epoch)
    assert any(not torch.equal(full[k], v) for k, v in lora_state(part).items())
    resumed = lora_state(sft_train(fresh(), groups, config, lora, output_dir=tmp_path / "cut"))
    assert resumed.keys() == full.keys() and all(torch.equal(resumed[k], full[k]) for k in full)
    assert load_sft_state(tmp_path / "cut")["epoch_losses"] == load_sft_state(tmp_path / "full")["epoch_losses"]
    with pytest.raises(ValueError, match="different run"):  # the same folder refuses other examples
        sft_train(fresh(), groups[:3], config, lora, output_dir=tmp_path / "cut")


def test_weighted_groups_weigh_each_pair_loss_and_gradient(base):
    """A group's weights scale each pair's answer NLL: the weighted grouped loss (and every LoRA gradient) is the
    weighted sum of the per-pair losses, the weights scaled to mean 1 within each group."""
    raw = [(3.0, 1.0, 1.0, 0.5, 0.5), (1.0, 4.0), (2.0,)]
    groups = [dataclasses.replace(g, weights=w) for g, w in zip(GROUPS, raw)]
    for group, w in zip(groups, raw):
        assert group.weights == pytest.approx([x * len(w) / sum(w) for x in w])
    assert GroupedExample(PREFIX, [("a", "b"), ("c", "d")], weights=[1e308, 1e308]).weights == (1.0, 1.0)
    features, _ = tokenize_groups(base.tokenizer, groups, 256)
    pad = base.tokenizer.pad_token_id or 0
    batch = collate_groups(features, pad)
    answer = batch["labels"] != -100
    assert set(batch["label_weights"][~answer].tolist()) == {0.0} and bool((batch["label_weights"][answer] > 0).all())
    model = lora_model(base)
    grouped_loss, grouped_grads = loss_and_grads(model, batch)
    pairs = pair_features(features)
    weights = [w for g in groups for w in g.weights]
    tokens = int(answer.sum())
    total, grads = 0.0, {}
    for (prompt, ans), w in zip(pairs, weights):
        loss, g = loss_and_grads(model, collate([(prompt, ans)], pad))  # mean over the pair's answer tokens
        total += w * loss * len(ans) / tokens
        for name, value in g.items():
            grads[name] = grads.get(name, 0) + value * w * len(ans) / tokens
    assert grouped_loss == pytest.approx(total, rel=1e-4)
    for name, value in grads.items():
        torch.testing.assert_close(grouped_grads[name], value, rtol=1e-3, atol=1e-5, msg=name)
    unweighted = collate_groups(tokenize_groups(base.tokenizer, GROUPS, 256)[0], pad)
    assert "label_weights" not in unweighted  # the unweighted path is the plain sum, as before
    assert loss_and_grads(model, unweighted)[0] != pytest.approx(grouped_loss, rel=1e-3)


@pytest.mark.parametrize("make, match", [
    (lambda: GroupedExample(PREFIX, [("a", "b"), ("c", "d")], weights=[1.0]), r"expected 2 positive finite weights"),
    (lambda: GroupedExample(PREFIX, [("a", "b")], weights=[0.0]), r"GroupedExample.weights"),
    (lambda: GroupedExample(PREFIX, [("a", "b")], weights=[float("nan")]), r"GroupedExample.weights"),
    (lambda: GroupedExample(PREFIX, [("a", "b")], weights="1"), r"GroupedExample.weights"),
    (lambda: GroupedExample(PREFIX, []), r"continuations must be a non-empty list.*GroupedExample.continuations"),
    (lambda: GroupedExample("", [("a", "b")]), r"prefix must be a non-empty string"),
    (lambda: GroupedExample(PREFIX, [("a", "b", "c")]), r"GroupedExample.continuations\[0\]"),
    (lambda: GroupedExample(PREFIX, [("a", 1)]), r"GroupedExample.continuations\[0\]"),
    (lambda: GroupedExample(PREFIX, "ab"), r"continuations must be a non-empty list"),
])
def test_bad_grouped_example(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_grouped_input_is_one_clear_error(fresh, base):
    tok, config = base.tokenizer, SFTConfig(**FAST)
    with pytest.raises(ValueError, match=r"expected a GroupedExample, got tuple \(sft example 1\)"):
        tokenize_groups(tok, [GROUPS[0], ("a prompt", "an answer")], 64)
    with pytest.raises(ValueError, match="sft example 1 must be a"):  # a pair list with a group inside
        sft_train(fresh(), [("a prompt", "an answer"), GROUPS[0]], config)
    with pytest.raises(ValueError, match=r"continuation has no tokens \(sft example 0, continuation 1\)"):
        tokenize_groups(tok, [GroupedExample(PREFIX, [("a", "b"), ("", "c")])], 64)
    with pytest.raises(ValueError, match=r"answer has no tokens.*\(sft example 0, continuation 0\)"):
        tokenize_groups(tok, [GroupedExample(PREFIX, [("a", "")])], 64, append_eos=False)
    with pytest.raises(ValueError, match=r"leaving none of max_length=4 for the prefix \(sft example 0, "
                                         r"continuation 0\); raise SFTConfig.max_length"):
        tokenize_groups(tok, [GroupedExample(PREFIX, [("one two three four", "b")])], 4)
    eager = fresh()
    eager.model.set_attn_implementation("eager")
    with pytest.raises(ValueError, match="attn_implementation='eager'.*load the model with attn_implementation='sdpa'"):
        sft_train(eager, GROUPS, config)


@pytest.mark.integration
def test_smollm2_grouped_loss_and_gradients_equal_the_per_pair_path():
    """The real model in float32: 2 users x 5 candidates behind an LLM-TRSR ranker prompt (~110-token prefix).

    The loss agrees to 1e-5. The gradients agree to float32 rounding, which here is the per-pair path's: against
    float64 (where the two paths agree to 3e-7), per-pair float32 gradients were off by up to 7e-4 of a LoRA
    tensor's largest value (its ten copies of the prefix sum the prefix's contributions ten times over) and the
    grouped ones by 1e-5. Any mistake in the mask, positions or labels moves gradients by far more than 2e-3.
    """
    from recllm.llm import load_causal_lm
    from recllm.trsr import prompts
    from recllm.trsr.ranker import RankerConfig, RankQuery, prompt_parts

    lm = load_causal_lm(device="cpu", dtype="float32")
    films = ["Toy Story (1995); Animation, Comedy", "Heat (1995); Action, Crime", "Babe (1995); Drama",
             "Casino (1995); Drama", "Se7en (1995); Thriller", "Apollo 13 (1995); Drama, IMAX",
             "Clueless (1995); Comedy", "Braveheart (1995); Action, War"]
    groups = []
    for user, (summary, recent) in enumerate([("Likes animated comedies.", films[:1]),
                                             ("Likes crime thrillers.", films[1:2])]):
        prefix, suffix = prompt_parts(lm, RankQuery(summary, tuple(recent)), RankerConfig(n_recent=1))
        candidates = films[2 + user:7 + user]
        groups.append(GroupedExample(prefix, [(prompts.format_item(c) + suffix, "Yes" if k == user else "No")
                                              for k, c in enumerate(candidates)]))
    features, _ = tokenize_groups(lm.tokenizer, groups, max_length=512, append_eos=False)
    pairs = [pair for group in groups for pair in group.pairs()]
    assert pair_features(features) == tokenize_examples(lm.tokenizer, pairs, 512, append_eos=False)[0]
    assert_same_loss_and_grads(lora_model(lm), features, lm.tokenizer.pad_token_id, tol=1e-5, grad_tol=2e-3)
