"""The Yes/No LLM ranker on a tiny random llama: prompt split, shared-prefix scoring, LoRA fit, ranks."""

import numpy as np
import pytest

from recllm.llm.backbone import chat_prompt, tiny_causal_lm
from recllm.llm.sft import LoRAConfig, SFTConfig
from recllm.trsr import prompts
from recllm.trsr.ranker import LLMRanker, RankerConfig, RankQuery, answer_token_ids, prompt_parts, target_ranks_of


@pytest.fixture(scope="module")
def lm():
    return tiny_causal_lm(seed=0)


QUERY = RankQuery("likes space operas and robots", ("Alien (1979)", "Dune (2021)", "Solaris (1972)", "Heat"))


@pytest.mark.parametrize("guarded", [False, True])
def test_prompt_parts_rebuild_the_full_prompt(lm, guarded):
    cfg = RankerConfig(n_recent=2, guarded=guarded)
    prefix, suffix = prompt_parts(lm, QUERY, cfg)
    head, tail = prompts.ranker_message_parts(QUERY.summary, QUERY.recent[-2:], guarded)
    system = prompts.SYSTEM_RANKER_GUARDED if guarded else prompts.SYSTEM_RANKER
    cand = "Blade Runner (1982)"
    full = chat_prompt(lm, head + prompts.format_item(cand, guarded) + tail, system=system)
    assert prefix + prompts.format_item(cand, guarded) + suffix == full
    assert "Solaris" in prefix and "Alien" not in prefix  # only the 2 most recent items
    assert suffix.endswith("<|im_start|>assistant\n")


def test_answers_must_be_single_tokens(lm):
    assert len(answer_token_ids(lm, RankerConfig())) == 2
    with pytest.raises(ValueError, match="single-token"):
        answer_token_ids(lm, RankerConfig(answers=("Absolutely yes", "No")))
    with pytest.raises(ValueError, match="n_recent"):
        RankerConfig(n_recent=-1)


@pytest.mark.parametrize("kwargs, field", [
    (dict(answers="YN"), "answers"), (dict(answers="Yes"), "answers"), (dict(answers=None), "answers"),
    (dict(shared_prefix="no"), "shared_prefix"), (dict(guarded="no"), "guarded"), (dict(guarded=1), "guarded"),
])
def test_ranker_config_names_the_bad_field(kwargs, field):
    """answers="YN" was read as ("Y", "N") and a truthy "no" switched a flag on; both are refused by name."""
    with pytest.raises(ValueError, match=rf"RankerConfig\.{field} must be"):
        RankerConfig(**kwargs)
    assert RankerConfig(answers=["Yes", "No"], guarded=np.bool_(True)).guarded


def test_target_ranks_are_pessimistic():
    ranks = target_ranks_of([np.array([0.1, 0.9, 0.5]), np.array([0.5, 0.5, 0.5]), np.array([0.9, 0.1])], [1, 0, 0])
    assert ranks.tolist() == [1, 3, 1]


def test_zero_shot_scores_are_probabilities_and_prefix_sharing_agrees(lm):
    ranker = LLMRanker(lm, RankerConfig(score_dtype="float32"), fine_tune=False, show_progress=False).fit([], [], [])
    cands = [["Blade Runner (1982)", "Notting Hill", "Toy Story (1995) and friends"], ["A"]]
    shared = ranker.score([QUERY, RankQuery(None, ())], cands)
    full = ranker.score([QUERY, RankQuery(None, ())], cands, shared_prefix=False)
    assert [len(s) for s in shared] == [3, 1]
    for a, b in zip(shared, full):
        assert np.all((a > 0) & (a < 1))
        np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(RuntimeError, match="not fitted"):
        LLMRanker(lm).score([QUERY], [["x"]])


def test_lora_fit_learns_a_planted_rule():
    lm = tiny_causal_lm(seed=1)
    queries = [RankQuery(f"user {i}", (f"item {i}",)) for i in range(16)]
    c = [["a shiny red apple", "a grey stone", "a dull grey pebble"]] * 16
    y = [[1, 0, 0]] * 16
    valid = (queries[:4], [["a grey stone", "a shiny red apple", "a grey stone"]] * 4, [1] * 4)
    sft = SFTConfig(epochs=5, learning_rate=3e-2, batch_size=4, show_progress=False, bf16=False)
    ranker = LLMRanker(lm, RankerConfig(n_recent=1), sft=sft, lora=LoRAConfig(r=8, alpha=16, dropout=0.0),
                       show_progress=False)
    base = LLMRanker(lm, RankerConfig(n_recent=1), fine_tune=False, show_progress=False).fit([], [], [])
    before = base.score(queries[4:8], [["a grey stone", "a shiny red apple"]] * 4)
    ranker.fit(queries, c, y, valid=valid)
    after = ranker.score(queries[4:8], [["a grey stone", "a shiny red apple"]] * 4)
    gain = [(a[1] - a[0]) - (b[1] - b[0]) for a, b in zip(after, before)]
    assert all(g > 0 for g in gain)  # training moved P(Yes) towards the planted positive
    assert set(ranker.valid_scores_) == set(range(5))
    assert (ranker.n_train_groups_, ranker.n_train_candidates_, ranker.scored_candidates_) == (16, 48, 8)


@pytest.mark.parametrize("guarded", [False, True])
def test_training_reads_the_tokens_scoring_reads(lm, monkeypatch, guarded):
    """Per candidate, the prompt tokens of a training group equal those the shared-prefix scorer feeds the model,
    and the answer token is the one scoring reads."""
    import recllm.llm.scoring as scoring
    from recllm.llm.sft_grouped import pair_features, tokenize_groups

    config = RankerConfig(n_recent=3, guarded=guarded)
    ranker = LLMRanker(lm, config, fine_tune=False, show_progress=False).fit([], [], [])
    queries = [QUERY, RankQuery(None, ("Up (2009)",))]
    cands = [['Blade Runner (1982) "final cut"', "  Notting\nHill ", "Toy Story (1995)|Animation"], ["1984", "x"]]
    labels = [[1, 0, 0], [0, 1]]
    features, _ = tokenize_groups(lm.tokenizer, ranker.groups(queries, cands, labels), max_length=1024,
                                  append_eos=False)
    trained = pair_features(features)
    seen = []
    real = scoring._continuation_logprobs

    def spy(lm_, prefix_ids, conts, *args, **kwargs):
        seen.extend((list(prefix_ids) + list(c)) for c in conts)
        return real(lm_, prefix_ids, conts, *args, **kwargs)

    monkeypatch.setattr(scoring, "_continuation_logprobs", spy)
    ranker.score(queries, cands, use_cache=False)
    assert [prompt for prompt, _ in trained] == seen
    yes, no = answer_token_ids(lm, config)
    assert [answer for _, answer in trained] == [[yes], [no], [no], [no], [yes]]


def test_grouped_fit_is_the_per_pair_fit_on_the_same_pairs():
    """One step over every labelled candidate: the grouped ranker fit and per-pair SFT on the same (prompt, answer)
    pairs end with the same LoRA weights."""
    import copy
    import dataclasses

    import torch
    from peft import get_peft_model_state_dict

    from recllm.llm.sft import sft_train

    base = tiny_causal_lm(seed=2)
    fresh = lambda: dataclasses.replace(base, model=copy.deepcopy(base.model))  # noqa: E731
    queries = [QUERY, RankQuery("likes comedies", ("Heat",)), RankQuery(None, ("Up (2009)", "Cars"))]
    cands = [["Blade Runner (1982)", "Notting Hill", "Toy Story (1995)"], ["Airplane!", "Alien"], ["Ratatouille"]]
    labels = [[1, 0, 0], [0, 1], [1]]
    sft = SFTConfig(epochs=1, learning_rate=1e-2, batch_size=len(queries), grad_accum=1, append_eos=False,
                    warmup_ratio=0.0, show_progress=False, bf16=False)
    lora = LoRAConfig(dropout=0.0)
    ranker = LLMRanker(fresh(), RankerConfig(), sft=sft, lora=lora, show_progress=False,
                       class_weight=None).fit(queries, cands, labels)
    pairs = [pair for group in ranker.groups(queries, cands, labels) for pair in group.pairs()]
    per_pair = sft_train(fresh(), pairs, dataclasses.replace(sft, batch_size=len(pairs)), lora)
    grouped_state = get_peft_model_state_dict(ranker.trained_lm_.model)
    pair_state = get_peft_model_state_dict(per_pair.model)
    assert any(v.abs().max() > 0 for k, v in grouped_state.items() if "lora_B" in k)  # the step moved the adapter
    assert grouped_state.keys() == pair_state.keys()
    for key, value in pair_state.items():
        torch.testing.assert_close(grouped_state[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_an_interrupted_fit_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import copy
    import dataclasses
    import functools

    import torch
    from peft import get_peft_model_state_dict

    import recllm.trsr.ranker as ranker_module
    from recllm.llm.sft import load_sft_state, sft_train

    base = tiny_causal_lm(seed=3)
    fresh = lambda: dataclasses.replace(base, model=copy.deepcopy(base.model))  # noqa: E731
    queries = [RankQuery(f"user {i}", (f"item {i}",)) for i in range(4)]
    cands = [["a shiny red apple", f"grey stone {i}", "a pebble"] for i in range(4)]
    labels = [[1, 0, 0]] * 4
    sft = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=1, grad_accum=2, checkpoint_every=1, append_eos=False,
                    show_progress=False, bf16=False)
    lora = LoRAConfig(dropout=0.1)  # dropout draws from the RNG: its state must be restored too

    def fit(folder):
        return LLMRanker(fresh(), RankerConfig(), sft=sft, lora=lora, output_dir=folder,
                         show_progress=False).fit(queries, cands, labels)

    def weights(ranker):
        return get_peft_model_state_dict(ranker.trained_lm_.model)

    full = weights(fit(tmp_path / "full"))
    monkeypatch.setattr(ranker_module, "sft_train", functools.partial(sft_train, stop_after_steps=3))
    cut = weights(fit(tmp_path / "cut"))
    assert load_sft_state(tmp_path / "cut")["step"] == 3 and any(not torch.equal(full[k], v) for k, v in cut.items())
    monkeypatch.setattr(ranker_module, "sft_train", sft_train)
    resumed = weights(fit(tmp_path / "cut"))
    assert resumed.keys() == full.keys() and all(torch.equal(resumed[k], full[k]) for k in full)


def test_bad_training_groups_are_one_clear_error(lm):
    from recllm.errors import UserInputError

    ranker = LLMRanker(lm, RankerConfig(), show_progress=False)
    with pytest.raises(UserInputError, match="differ in length"):
        ranker.fit([QUERY], [["a"], ["b"]], [[1]])
    with pytest.raises(UserInputError, match=r"2 candidates and 1 labels \(LLMRanker.fit group 0\)"):
        ranker.fit([QUERY], [["a", "b"]], [[1]])
    with pytest.raises(UserInputError, match="labels must be 0 or 1"):
        ranker.fit([QUERY], [["a", "b"]], [[1, 2]])


def test_balanced_class_weight_gives_yes_and_no_equal_total_weight(lm):
    """The default weighs a group's lone positive as much as all its negatives (the paper's 1:1 pairs), scikit-learn's
    n / (2 n_class); None, or a group of one class, weighs every label alike."""
    from recllm.trsr.ranker import label_weights

    labels = [0] * 7 + [1] + [0] * 13  # 1 positive, 20 negatives
    weights = label_weights(labels, "balanced")
    assert weights[7] == pytest.approx(10.5) and weights[0] == pytest.approx(0.525)
    yes_total = sum(w for w, y in zip(weights, labels) if y)
    assert yes_total == pytest.approx(sum(w for w, y in zip(weights, labels) if not y))
    assert label_weights(labels, None) is None and label_weights([0, 0], "balanced") is None
    queries, cands = [QUERY, QUERY], [["a", "b", "c", "d"], ["e", "f"]]
    groups = LLMRanker(lm, show_progress=False).groups(queries, cands, [[0, 1, 0, 0], [1, 0]])
    assert groups[0].weights == pytest.approx([2 / 3, 2.0, 2 / 3, 2 / 3]) and groups[1].weights == (1.0, 1.0)
    assert LLMRanker(lm, show_progress=False, class_weight=None).groups(queries, cands, [[0, 1, 0, 0], [1, 0]])[
        0].weights is None
    with pytest.raises(ValueError, match="LLMRanker.class_weight must be 'balanced' or None, got 'equal'"):
        LLMRanker(lm, class_weight="equal")


def test_the_sft_defaults_live_in_one_place():
    from recllm.trsr import TRSRConfig
    from recllm.trsr.ranker import ranker_sft_config

    assert TRSRConfig().sft == ranker_sft_config()
    assert ranker_sft_config().learning_rate == 1e-4  # the paper's
    assert ranker_sft_config(epochs=3).epochs == 3


def test_scores_are_cached_per_model(lm, tmp_path):
    from recllm.llm.cache import DiskCache

    cache = DiskCache(tmp_path / "c.sqlite")
    ranker = LLMRanker(lm, RankerConfig(), fine_tune=False, cache=cache, show_progress=False).fit([], [], [])
    first = ranker.score([QUERY], [["Blade Runner (1982)", "Heat"]])
    assert len(cache) == 1 and ranker.score_seconds_ > 0
    took = ranker.score_seconds_
    again = ranker.score([QUERY], [["Blade Runner (1982)", "Heat"]])
    np.testing.assert_array_equal(first[0], again[0])
    assert ranker.score_seconds_ == pytest.approx(took)  # the stored model time, not the lookup time
    ranker.score([QUERY], [["Blade Runner (1982)", "Heat"]], use_cache=False)
    assert len(cache) == 1


def test_scores_are_stored_under_the_one_key_recipe(lm, tmp_path):
    """``score_cache_key`` is what ``LLMRanker`` stores under (the Ray path calls it too): a user's scores are found
    under its key for the scoring model and settings, and a change of prefix sharing is another key."""
    from recllm.llm.cache import DiskCache
    from recllm.trsr.ranker import candidate_parts, score_cache_key

    cache = DiskCache(tmp_path / "c.sqlite")
    config = RankerConfig()
    ranker = LLMRanker(lm, config, fine_tune=False, cache=cache, show_progress=False).fit([], [], [])
    cands = ["Blade Runner (1982)", "Heat"]
    scores = ranker.score([QUERY], [cands])[0]
    prefix, conts = candidate_parts(ranker.lm_, QUERY, cands, config)
    hit = cache.get(score_cache_key(ranker.lm_, config, True, prefix, conts))
    assert hit is not None
    np.testing.assert_array_equal(np.asarray(hit["p"]), scores)
    assert cache.get(score_cache_key(ranker.lm_, config, False, prefix, conts)) is None


def test_bfloat16_scoring_keeps_float32_logits_and_leaves_the_model_alone(lm):
    from recllm.trsr.ranker import scoring_lm

    head = lm.model.get_output_embeddings()
    fast = scoring_lm(lm, "bfloat16", answer_token_ids(lm, RankerConfig()))
    assert lm.model.get_output_embeddings() is head and next(lm.model.parameters()).dtype.is_floating_point
    assert fast.dtype != lm.dtype  # cache keys tell the two apart
    assert scoring_lm(lm, "float32") is lm
    cands = [[f"candidate film number {i}" for i in range(12)]]
    exact = LLMRanker(lm, RankerConfig(), fine_tune=False, show_progress=False).fit([], [], []).score([QUERY], cands)
    quick = LLMRanker(lm, RankerConfig(score_dtype="bfloat16"), fine_tune=False,
                      show_progress=False).fit([], [], []).score([QUERY], cands)
    assert len(np.unique(quick[0])) == 12  # no ties from quantised logits
    np.testing.assert_allclose(quick[0], exact[0], atol=0.1)
    with pytest.raises(ValueError, match="score_dtype"):
        RankerConfig(score_dtype="int8")
    with pytest.raises(ValueError, match="answer token ids"):
        scoring_lm(lm, "bfloat16")


def test_training_record_survives_a_cut_log(tmp_path):
    from recllm.trsr.ranker import _training_record

    (tmp_path / "training_log.jsonl").write_text(
        '{"event": "start"}\n{"step": 10, "seconds": 2.5}\n{"event": "epoch", "epoch": 0, "eval": 1.5}\n'
        '{"step": 20, "seconds": 1.5}\n{"step": 2', encoding="utf-8")
    assert _training_record(tmp_path) == (4.0, {0: 1.5})
    assert _training_record(tmp_path / "missing") == (0.0, {})


@pytest.mark.parametrize("show_progress", [False, True])
def test_the_rankers_progress_switch_covers_its_fine_tunes_bar(show_progress, capsys):
    from recllm.trsr.ranker import RankQuery as Query

    sft = SFTConfig(epochs=1, learning_rate=1e-2, batch_size=1, warmup_ratio=0.0, show_progress=True, bf16=False)
    LLMRanker(tiny_causal_lm(seed=3), RankerConfig(), sft=sft, lora=LoRAConfig(dropout=0.0),
              show_progress=show_progress, class_weight=None).fit([Query(None, ("Heat",))], [["Alien", "Up"]], [[1, 0]])
    assert ("sft" in capsys.readouterr().err) is show_progress
