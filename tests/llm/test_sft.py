"""LoRA SFT on a tiny llama: answer-only labels, learning a trivial mapping, exact resume, best epoch, configs."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from recllm.llm.backbone import tiny_causal_lm
from recllm.llm.sft import (
    LoRAConfig,
    SFTConfig,
    _answer_loss_sum,
    answer_nll,
    collate,
    load_adapter,
    load_sft_state,
    sft_train,
    tokenize_examples,
)

TEMPLATE = "<|im_start|>user\nWhat colour is {}?<|im_end|>\n<|im_start|>assistant\n"
MAPPING = [("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black")]
EXAMPLES = [(TEMPLATE.format(thing), colour) for thing, colour in MAPPING]
FAST = dict(show_progress=False, bf16=False, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def base():
    lm = tiny_causal_lm(seed=0)
    # tiny_causal_lm declares pad == EOS as the embedding's padding_idx, which zeroes the (tied) EOS row: its logit
    # is then stuck at 0 and EOS cannot be learned. Give the row random values like every other token.
    emb = lm.model.get_input_embeddings().weight
    with torch.no_grad():
        emb[lm.tokenizer.eos_token_id] = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0)) * 0.2
    return lm


@pytest.fixture()
def fresh(base):
    """A new untouched copy of the tiny base model for every call (sft_train injects LoRA layers in place)."""
    return lambda: dataclasses.replace(base, model=copy.deepcopy(base.model))


def lora_state(lm) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(lm.model).items()}


def next_token(lm, prompt: str) -> str:
    ids = lm.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        return lm.tokenizer.decode([int(lm.model(input_ids=ids).logits[0, -1].argmax())])


def test_labels_cover_exactly_the_answer_tokens(base):
    tok = base.tokenizer
    examples = [("short", "Yes"), (TEMPLATE.format("a much longer question about snow"), "No thanks")]
    features, stats = tokenize_examples(tok, examples, max_length=64)
    assert stats == {"examples": 2, "prompts_truncated": 0, "answers_truncated": 0}
    batch = collate(features, pad_id=tok.pad_token_id)
    assert tok.pad_token_id == tok.eos_token_id  # the case where masking by pad id would be wrong
    for row, (prompt, answer) in enumerate(examples):
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        a_ids = tok(answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
        n, width = len(p_ids) + len(a_ids), batch["input_ids"].shape[1]
        assert batch["input_ids"][row, width - n:].tolist() == p_ids + a_ids
        assert batch["attention_mask"][row].tolist() == [0] * (width - n) + [1] * n
        labels = batch["labels"][row].tolist()
        assert labels == [-100] * (width - len(a_ids)) + a_ids  # exactly the answer + EOS, nothing else
        assert batch["position_ids"][row, width - n:].tolist() == list(range(n))
    # the padding of the shorter row holds pad (== EOS) ids that must not be learned
    assert (batch["input_ids"][0] == tok.eos_token_id).sum() > (batch["labels"][0] == tok.eos_token_id).sum()


def test_truncation_cuts_the_prompt_from_the_left_and_counts_it(base):
    tok = base.tokenizer
    long_prompt = "one two three four five six seven eight nine ten eleven twelve"
    features, stats = tokenize_examples(tok, [(long_prompt, "Yes"), ("hi", "No")], max_length=6)
    prompt, answer = features[0]
    assert answer == tok("Yes", add_special_tokens=False).input_ids + [tok.eos_token_id]
    assert len(prompt) + len(answer) == 6
    assert prompt == tok(long_prompt, add_special_tokens=False).input_ids[-len(prompt):]  # the end is kept
    assert stats["prompts_truncated"] == 1 and stats["answers_truncated"] == 0
    features, stats = tokenize_examples(tok, [("q", "a b c d e f g h")], max_length=4)
    assert len(features[0][1]) == 3 and len(features[0][0]) == 1 and stats["answers_truncated"] == 1


def test_padded_batch_loss_equals_per_example_loss(base):
    """Left padding + position ids + answer-only logits give the loss of each example computed alone."""
    examples = EXAMPLES + [("x", "a longer answer here"), (TEMPLATE.format("a ripe tomato in summer"), "red")]
    features, _ = tokenize_examples(base.tokenizer, examples, max_length=64)
    pad = base.tokenizer.pad_token_id
    with torch.no_grad():
        batched = float(_answer_loss_sum(base.model, collate(features, pad), "cpu"))
        alone = sum(float(_answer_loss_sum(base.model, collate([f], pad), "cpu")) for f in features)
        # and against transformers' own loss on one unpadded example (mean over its answer tokens)
        one = collate(features[-1:], pad)
        hf = float(base.model(input_ids=one["input_ids"], labels=one["labels"]).loss)
        ours = float(_answer_loss_sum(base.model, one, "cpu")) / len(features[-1][1])
    assert batched == pytest.approx(alone, rel=1e-5)
    assert ours == pytest.approx(hf, rel=1e-5)


def test_models_without_logits_to_keep_give_the_same_loss(base, monkeypatch):
    import recllm.llm.sft as sft

    features, _ = tokenize_examples(base.tokenizer, EXAMPLES, max_length=64)
    batch = collate(features, base.tokenizer.pad_token_id)
    with torch.no_grad():
        trimmed = float(_answer_loss_sum(base.model, batch, "cpu"))
        monkeypatch.setattr(sft, "_accepts_logits_to_keep", lambda model_type: False)
        full = float(_answer_loss_sum(base.model, batch, "cpu"))
    assert trimmed == pytest.approx(full, rel=1e-5)


def test_learns_a_trivial_mapping(fresh, tmp_path):
    lm = fresh()
    before = answer_nll(lm, EXAMPLES)
    assert [next_token(lm, p) for p, _ in EXAMPLES] != [a for _, a in EXAMPLES]
    config = SFTConfig(epochs=40, learning_rate=3e-2, batch_size=4, log_every=5, **FAST)
    tuned = sft_train(lm, EXAMPLES, config, LoRAConfig(dropout=0.0), output_dir=tmp_path)
    after = answer_nll(tuned, EXAMPLES)
    assert after < 0.25 * before and after < 1.0
    assert [next_token(tuned, p) for p, _ in EXAMPLES] == [a for _, a in EXAMPLES]
    # training saw the very tokens inference scores: recllm.llm.scoring agrees with the training loss
    from recllm.llm.scoring import score_continuations

    prompt, answer = EXAMPLES[2]
    logprob = score_continuations(tuned, prompt, [answer + tuned.tokenizer.eos_token])[0]
    n_tokens = len(tokenize_examples(tuned.tokenizer, [EXAMPLES[2]], 64)[0][0][1])
    assert logprob == pytest.approx(-answer_nll(tuned, [EXAMPLES[2]]) * n_tokens, rel=1e-4, abs=1e-4)
    records = [json.loads(line) for line in (tmp_path / "training_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert all(r["tokens_per_s"] > 0 for r in records if "loss" in r)
    assert records[0]["event"] == "start" and records[0]["prompts_truncated"] == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["sft"]["epochs"] == 40 and saved["lora"]["r"] == 8 and saved["resolved"]["bf16"] is False
    assert tuned.fingerprint != lm.fingerprint.split("|adapter=")[0] and "adapter=" in tuned.fingerprint


def test_resume_after_interruption_matches_an_uninterrupted_run(fresh, tmp_path):
    examples = EXAMPLES + [(TEMPLATE.format(t), c) for t, c in [("blood", "red"), ("sun", "yellow"),
                                                               ("night", "dark"), ("milk", "white")]]
    config = SFTConfig(epochs=3, learning_rate=1e-2, batch_size=2, grad_accum=2, checkpoint_every=1,
                       keep_checkpoints=2, warmup_ratio=0.2, **{k: v for k, v in FAST.items() if k != "warmup_ratio"})
    lora = LoRAConfig(dropout=0.1)  # dropout draws from the RNG: its state must be restored too
    full = lora_state(sft_train(fresh(), examples, config, lora, output_dir=tmp_path / "full"))

    part = sft_train(fresh(), examples, config, lora, output_dir=tmp_path / "cut", stop_after_steps=3)
    assert load_sft_state(tmp_path / "cut")["step"] == 3  # mid-epoch (2 steps per epoch)
    assert any(not torch.equal(full[k], v) for k, v in lora_state(part).items())
    resumed = lora_state(sft_train(fresh(), examples, config, lora, output_dir=tmp_path / "cut"))
    assert resumed.keys() == full.keys()
    for key in full:
        assert torch.equal(resumed[key], full[key]), key
    assert load_sft_state(tmp_path / "cut")["epoch_losses"] == load_sft_state(tmp_path / "full")["epoch_losses"]
    events = [json.loads(x).get("event") for x in (tmp_path / "cut" / "training_log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("resume") == 1
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "cut").glob("checkpoint-*"))
    assert steps == [5, 6]  # only the newest kept
    assert not list((tmp_path / "cut").glob(".*"))  # no temp folders left behind
    # a finished run reruns as a no-op returning the same weights
    again = lora_state(sft_train(fresh(), examples, config, lora, output_dir=tmp_path / "cut"))
    assert all(torch.equal(again[k], full[k]) for k in full)


def test_every_rank_returns_the_best_epoch_after_a_resume(fresh, tmp_path, monkeypatch):
    """Under torchrun only rank 0 writes; the others kept the best adapter in memory, so after a resume whose best
    epoch came before it they returned the last epoch's adapter (rank 0: the best)."""
    import recllm.distributed.ddp as ddp

    class OtherRank:  # what a torchrun rank other than 0 gets from ddp.context, with the whole batch
        rank, world_size, local_rank, device, is_main = 1, 1, 0, "cpu", False

        def wrap(self, net):  # noqa: ANN001, ANN202
            return net

        def part(self, batch):  # noqa: ANN001, ANN202
            return np.asarray(batch)

        def sum(self, value):  # noqa: ANN001, ANN202
            return float(value)

    config = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=4, checkpoint_every=1, **FAST)
    best_first = lambda lm, epoch: 1.0 if epoch == 0 else 0.0  # noqa: E731 - epoch 0 validates best
    out = tmp_path / "run"
    sft_train(fresh(), EXAMPLES, config, output_dir=out, eval_fn=best_first, stop_after_steps=3)  # rank 0, cut
    assert load_sft_state(out)["best_epoch"] == 0
    monkeypatch.setattr(ddp, "context", lambda device="auto": OtherRank())
    other = lora_state(sft_train(fresh(), EXAMPLES, config, output_dir=out, eval_fn=best_first))
    best = lora_state(load_adapter(fresh(), out / "best"))
    assert other.keys() == best.keys() and all(torch.equal(other[k], best[k]) for k in best)


def test_resume_refuses_a_different_run_and_says_what_differs(fresh, tmp_path, monkeypatch):
    config = SFTConfig(epochs=1, batch_size=4, **FAST)
    sft_train(fresh(), EXAMPLES, config, output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different run \(other training examples\)"):
        sft_train(fresh(), EXAMPLES[:3], config, output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different run \(other SFT settings: learning_rate\)"):
        sft_train(fresh(), EXAMPLES, dataclasses.replace(config, learning_rate=0.5), output_dir=tmp_path)
    import recllm.llm.backbone as backbone

    with monkeypatch.context() as patch:  # an upgraded recllm.llm: its fingerprint says so
        patch.setattr(backbone, "package_source_sha256", lambda package, exclude=(): "0" * 64)
        with pytest.raises(ValueError, match=r"run \(another source of recllm.llm \(an upgrade or an edit\)\)"):
            sft_train(fresh(), EXAMPLES, config, output_dir=tmp_path)
    # display-only settings may change
    sft_train(fresh(), EXAMPLES, dataclasses.replace(config, show_progress=True), output_dir=tmp_path)


def test_best_epoch_adapter_is_kept_and_returned(fresh, tmp_path):
    scores = {0: 0.2, 1: 0.9, 2: 0.4}
    seen = []

    def eval_fn(lm, epoch):
        seen.append((epoch, lm.model.training))
        return scores[epoch]

    config = SFTConfig(epochs=3, learning_rate=1e-2, batch_size=4, checkpoint_every=0, keep_checkpoints=3, **FAST)
    tuned = sft_train(fresh(), EXAMPLES, config, output_dir=tmp_path, eval_fn=eval_fn)
    assert seen == [(0, False), (1, False), (2, False)]
    state = load_sft_state(tmp_path)
    assert state["best_epoch"] == 1 and state["epoch_scores"] == {"0": 0.2, "1": 0.9, "2": 0.4}
    best = lora_state(tuned)
    at_epoch_1 = lora_state(load_adapter(fresh(), tmp_path / "checkpoint-2"))
    last = lora_state(load_adapter(fresh(), tmp_path / "checkpoint-3"))
    assert all(torch.equal(best[k], at_epoch_1[k]) for k in best)
    assert any(not torch.equal(best[k], last[k]) for k in best)
    # load_adapter on the output folder picks ``best``; same logits as the returned model
    loaded = load_adapter(fresh(), tmp_path)
    ids = tuned.tokenizer(EXAMPLES[0][0], return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, tuned.model(input_ids=ids).logits)
    assert loaded.fingerprint == tuned.fingerprint


def test_best_epoch_without_output_dir(fresh):
    config = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=4, **FAST)
    first = lora_state(sft_train(fresh(), EXAMPLES, dataclasses.replace(config, epochs=1)))
    tuned = sft_train(fresh(), EXAMPLES, config, eval_fn=lambda lm, epoch: 1.0 - epoch)  # epoch 0 is best
    assert all(torch.equal(v, first[k]) for k, v in lora_state(tuned).items())


def test_same_seed_same_weights_other_seed_differs(fresh):
    config = SFTConfig(epochs=2, learning_rate=1e-2, batch_size=2, **FAST)
    a = lora_state(sft_train(fresh(), EXAMPLES, config))
    b = lora_state(sft_train(fresh(), EXAMPLES, config))
    c = lora_state(sft_train(fresh(), EXAMPLES, dataclasses.replace(config, seed=1)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bf16_autocast_trains(fresh):
    config = SFTConfig(epochs=3, learning_rate=1e-2, batch_size=4, bf16=True, show_progress=False)
    lm = fresh()
    before = answer_nll(lm, EXAMPLES)
    assert answer_nll(sft_train(lm, EXAMPLES, config), EXAMPLES) < before
    for name, param in lm.model.named_parameters():
        assert param.dtype == torch.float32, name  # master weights stay float32


def test_errors(fresh, tmp_path):
    lm = fresh()
    with pytest.raises(ValueError, match="example 1"):
        sft_train(lm, [("a", "b"), ("only a prompt",)], SFTConfig(**FAST))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-empty"):
        sft_train(lm, [], SFTConfig(**FAST))
    with pytest.raises(ValueError, match="stop_after_steps"):
        sft_train(lm, EXAMPLES, SFTConfig(**FAST), stop_after_steps=0)
    tuned = sft_train(lm, EXAMPLES, SFTConfig(batch_size=4, **FAST))
    with pytest.raises(ValueError, match="already carries"):
        sft_train(tuned, EXAMPLES, SFTConfig(**FAST))
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        load_adapter(fresh(), tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [dict(epochs=0), dict(epochs=1.5), dict(learning_rate=0), dict(learning_rate=2.0), dict(batch_size=0),
     dict(grad_accum=0), dict(max_length=1), dict(bf16="yes"), dict(checkpoint_every=-1), dict(warmup_ratio=1.0),
     dict(keep_checkpoints=0), dict(max_grad_norm=0.0), dict(weight_decay=-1.0), dict(seed="0")],
)
def test_bad_sft_config(kwargs):
    with pytest.raises(ValueError, match="SFTConfig"):
        SFTConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [dict(r=0), dict(r=2.5), dict(alpha=0), dict(dropout=1.0), dict(dropout=-0.1), dict(target_modules=()),
     dict(target_modules=("q_proj", ""))],
)
def test_bad_lora_config(kwargs):
    with pytest.raises(ValueError, match="LoRAConfig"):
        LoRAConfig(**kwargs)


@pytest.mark.parametrize(
    "cls, kwargs, field",
    [(SFTConfig, dict(weight_decay=float("nan")), "weight_decay"), (SFTConfig, dict(weight_decay="0"), "weight_decay"),
     (SFTConfig, dict(checkpoint_every=True), "checkpoint_every"),
     (SFTConfig, dict(group_by_length="no"), "group_by_length"), (SFTConfig, dict(append_eos="no"), "append_eos"),
     (SFTConfig, dict(show_progress="no"), "show_progress"), (LoRAConfig, dict(alpha="16"), "alpha"),
     (LoRAConfig, dict(alpha=float("inf")), "alpha"), (LoRAConfig, dict(dropout="0.1"), "dropout")],
)
def test_sft_lora_config_names_the_bad_field(cls, kwargs, field):
    """A NaN, a string where a number goes, a bool where a count goes and a truthy string where a flag goes are
    each refused on construction, naming the field (they were accepted, or failed in a bare comparison)."""
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field} must be"):
        cls(**kwargs)
    SFTConfig(checkpoint_every=np.int64(5), weight_decay=np.float32(0.01), show_progress=np.bool_(False))


def test_lora_config_to_peft():
    peft_config = LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj"]).to_peft()
    assert peft_config.r == 4 and peft_config.lora_alpha == 8 and set(peft_config.target_modules) == {"q_proj"}


def test_append_eos_false_leaves_the_answer_alone(base):
    tokenizer = base.tokenizer
    with_eos, _ = tokenize_examples(tokenizer, [("Is it red?", "Yes")], max_length=64)
    without, _ = tokenize_examples(tokenizer, [("Is it red?", "Yes")], max_length=64, append_eos=False)
    assert with_eos[0][1][-1] == tokenizer.eos_token_id
    assert without[0][1] == with_eos[0][1][:-1] and tokenizer.eos_token_id not in without[0][1]


def test_a_refused_folder_names_what_differs_in_the_base_model():
    from pathlib import Path

    from recllm.llm.checkpoints import check_resumable

    saved = {"base_model": "m", "base_fingerprint": "m|float32|code=aaa", "sft": {}, "lora": {}}
    cases = (({**saved, "base_fingerprint": "m|bfloat16|code=aaa"}, r"another precision float32 -> bfloat16\)"),
             ({**saved, "base_fingerprint": "m|float32|code=aaa|adapter=f0"}, r"another adapter the model carries\)"),
             ({**saved, "base_model": "n", "base_fingerprint": "n|float32|code=aaa"}, r"run \(another base model\)"))
    for current, says in cases:
        with pytest.raises(ValueError, match=says):
            check_resumable(saved, current, Path("run"))
    check_resumable(saved, dict(saved), Path("run"))  # the same run resumes
    from recllm.errors import UserInputError

    with pytest.raises(UserInputError) as refused:  # the user's to fix: `recllm trsr train` gives it in one line
        check_resumable(saved, cases[0][0], Path("runs/t/sft"))
    assert refused.value.where == "runs/t" and "give a new output folder" in refused.value.todo


def test_a_run_of_another_number_of_processes_is_refused():
    """``resolved.world_size`` is checked (the rest of ``resolved``, the machine, is not); a config written before
    torchrun support has none and counts as one process."""
    from pathlib import Path

    from recllm.errors import UserInputError
    from recllm.llm.checkpoints import check_resumable

    saved = {"base_model": "m", "base_fingerprint": "m|float32|code=aaa", "sft": {}, "lora": {},
             "resolved": {"device": "cpu", "torch_threads": 2, "world_size": 2}}
    one = {**saved, "resolved": {"device": "cuda:0", "torch_threads": 8, "world_size": 1}}
    with pytest.raises(UserInputError, match=r"\(2 process\(es\) there, 1 here: resume with torchrun "
                                             r"--nproc-per-node 2\) \(runs/t\); give a new output folder") as refused:
        check_resumable(saved, one, Path("runs/t/sft"))
    assert "\n" not in str(refused.value)
    check_resumable(saved, {**one, "resolved": {"device": "cuda:0", "world_size": 2}}, Path("runs/t/sft"))
    older = {**saved, "resolved": {"device": "cpu", "torch_threads": 2}}
    check_resumable(older, one, Path("run"))
    with pytest.raises(UserInputError, match=r"1 process\(es\) there, 2 here"):
        check_resumable(older, saved, Path("run"))
