"""The one precision policy: "auto" follows the hardware, and on a CPU without native bfloat16 no model code path
of the demo or the benchmarks creates a bfloat16 tensor."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from recllm.llm import precision
from recllm.llm.backbone import load_causal_lm, tiny_causal_lm

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
AMX = AVX2 | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16"}


class DtypeRecorder(TorchDispatchMode):
    """Records the dtype of every tensor an operator reads or makes (autocast's casts included)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten((args, kwargs, out))[0]:
            if isinstance(value, torch.Tensor):
                self.seen.add(value.dtype)
        return out


@pytest.fixture()
def fresh_policy(monkeypatch, tmp_path):
    """An empty probe memo, no warning given yet, probes cached under ``tmp_path``; returns a measure counter."""
    monkeypatch.setattr(precision, "_probes", {})
    monkeypatch.setattr(precision, "_warned", False)
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_measure(bf16_seconds: float = 0.3):
        def measure(*args, **kwargs):
            calls.append(1)
            return precision.Bf16Probe(size=precision.PROBE_SIZE, float32_s=1.0, bfloat16_s=bf16_seconds, threads=1)
        monkeypatch.setattr(precision, "_measure", measure)

    return calls, fake_measure


@pytest.fixture()
def avx2_only(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2)
    monkeypatch.setattr(precision, "_measure", lambda *a, **k: pytest.fail("an AVX2-only CPU needs no probe"))


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-llama")
    lm = tiny_causal_lm(seed=0)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return str(folder)


# ------------------------------------------------------------------------------------------------ the policy
def test_avx2_only_cpu_resolves_auto_to_float32_with_its_reason(avx2_only):
    assert precision.resolve_dtype("auto", "cpu") == "float32"
    assert precision.describe_precision("auto", "cpu") == "float32: CPU has no native bf16 matmul (AVX2 only)"
    assert not precision.use_bf16_autocast("auto", "cpu")
    assert precision.resolve_dtype("float32", "cpu") == "float32"


def test_amx_cpu_picks_bfloat16_when_the_probe_finds_it_faster(monkeypatch, fresh_policy):
    calls, fake_measure = fresh_policy
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMX)
    fake_measure(bf16_seconds=0.3)
    assert precision.resolve_dtype("auto", "cpu") == "bfloat16"
    assert precision.describe_precision("auto", "cpu") == "bfloat16: AMX, probe 3.3x faster than float32"
    assert precision.use_bf16_autocast("auto", "cpu")


def test_native_flags_alone_are_not_enough_when_the_probe_finds_bf16_slower(monkeypatch, fresh_policy):
    calls, fake_measure = fresh_policy
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2 | {"avx512f", "avx512_bf16"})
    fake_measure(bf16_seconds=2.0)
    chosen = precision.choose_precision("auto", "cpu")
    assert chosen.dtype == "float32" and "AVX512-BF16" in chosen.reason and "0.50x" in chosen.reason


def test_probe_runs_once_per_machine_and_is_cached_on_disk(monkeypatch, fresh_policy, tmp_path):
    calls, fake_measure = fresh_policy
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMX)
    fake_measure()
    first = precision.bf16_probe()
    assert precision.bf16_probe() == first and len(calls) == 1
    monkeypatch.setattr(precision, "_probes", {})  # a new process: read from disk, not measured again
    assert precision.bf16_probe() == first and len(calls) == 1
    stored = list((tmp_path / "cache" / "hardware").glob("bf16-probe-*.json"))
    assert len(stored) == 1 and not list((tmp_path / "cache" / "hardware").glob(".*"))  # no temp file left
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMX | {"new_flag"})  # another CPU: measured again
    precision.bf16_probe()
    assert len(calls) == 2


def test_real_probe_is_short_and_sane():
    probe = precision._measure(size=64, budget=0.01)
    assert probe.float32_s > 0 and probe.bfloat16_s > 0 and probe.threads == 1


def test_explicit_bfloat16_on_an_emulating_cpu_warns_once_with_the_slowdown(monkeypatch, fresh_policy):
    calls, fake_measure = fresh_policy
    monkeypatch.setattr(precision, "cpu_flags", lambda: AVX2)
    fake_measure(bf16_seconds=25.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.resolve_dtype("bfloat16", "cpu") == "bfloat16"
        assert precision.resolve_dtype("bfloat16", "cpu") == "bfloat16"
        assert precision.use_bf16_autocast(True, "cpu")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "25x slower than float32" in messages[0] and "AVX2 only" in messages[0]


def test_cuda_follows_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.resolve_dtype("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.describe_precision("auto", "cuda:0") == "float32: CUDA device without bf16 support"
    assert precision.resolve_dtype("auto", "mps") == "float32"


@pytest.mark.parametrize("bad", ["fp8", "bf16", "", None, "AUTO"])
def test_a_wrong_value_lists_the_choices(bad):
    choices = r"unknown precision .*\(dtype\); choose one of auto, float32, bfloat16, float16"
    with pytest.raises(ValueError, match=choices):
        precision.resolve_dtype(bad, "cpu")


def test_wrong_values_fail_at_every_entry_point(tiny_folder):
    from recllm.impute.llm import LLMImputer
    from recllm.learn.encoder import ContentConfig
    from recllm.trsr.ranker import RankerConfig

    for make in (lambda: RankerConfig(score_dtype="fp8"), lambda: ContentConfig(dtype="fp8"),
                 lambda: load_causal_lm(tiny_folder, device="cpu", dtype="fp8"),
                 lambda: LLMImputer(dtype="fp8", cache=False).fit(pd.DataFrame({"a": [1.0, np.nan]}))):
        with pytest.raises(ValueError, match=r"unknown precision 'fp8' \(\w+(\.\w+)?\); choose one of auto, float32"):
            make()
    with pytest.raises(ValueError, match="bf16 must be True, False or 'auto'"):
        precision.use_bf16_autocast("yes", "cpu")


def test_training_helpers_give_the_training_precision():
    from recllm.llm import trainable_copy

    lm = tiny_causal_lm(seed=1)
    half = dataclasses.replace(lm, model=lm.model.to(torch.bfloat16), dtype="bfloat16")
    copy = trainable_copy(half)
    assert copy.dtype == precision.TRAINING_DTYPE and next(copy.model.parameters()).dtype == torch.float32
    assert next(half.model.parameters()).dtype == torch.bfloat16  # the caller's model is untouched
    # rounded weights are not the float32 model: caches and checkpoints keyed on the fingerprint must not mix them
    assert copy.fingerprint != lm.fingerprint and "from bfloat16 weights" in copy.name
    assert trainable_copy(lm).fingerprint == lm.fingerprint  # a float32 copy is the same model


# ------------------------------------------------------------------------------------------------ no bfloat16
def _no_bfloat16(run) -> None:
    with DtypeRecorder() as recorder:
        run()
    assert torch.float32 in recorder.seen  # the hook saw the model's work
    assert torch.bfloat16 not in recorder.seen and torch.float16 not in recorder.seen


def test_avx2_model_paths_create_no_bfloat16_tensor(avx2_only, tiny_folder, tmp_path):
    from recllm.learn.encoder import ContentConfig, load_content_model, raw_item_embeddings
    from recllm.llm import (embed_texts, generate, load_text_encoder, load_trainable_lm, next_token_logprobs,
                            score_continuations)
    from recllm.llm.sft import LoRAConfig, SFTConfig, sft_train

    loaded = {}
    _no_bfloat16(lambda: loaded.update(lm=load_causal_lm(tiny_folder, device="cpu")))  # dtype="auto"
    lm = loaded["lm"]
    assert lm.dtype == "float32"
    _no_bfloat16(lambda: generate(lm, ["Hello", "A longer prompt here"], max_new_tokens=4, show_progress=False))
    _no_bfloat16(lambda: score_continuations(lm, "Pick: ", [" one", " two"]))
    _no_bfloat16(lambda: next_token_logprobs(lm, "Answer: ", ["yes", "no"], [10, 11]))
    _no_bfloat16(lambda: embed_texts(lm, ["a film", "a book"], show_progress=False))
    _no_bfloat16(lambda: embed_texts(load_text_encoder(device="cpu"), ["a film", "a book"], show_progress=False))
    config = ContentConfig(model=tiny_folder, kind="causal")  # the LEARN encoder's default precision
    _no_bfloat16(lambda: raw_item_embeddings(["a film", "a book"], config, cache=False,
                                             model=load_content_model(config)))
    examples = [("Say yes: ", "yes"), ("Say no: ", "no")] * 2
    sft = SFTConfig(epochs=1, batch_size=4, checkpoint_every=0, show_progress=False)  # bf16="auto"
    _no_bfloat16(lambda: sft_train(load_trainable_lm(tiny_folder, device="cpu"), examples, sft, LoRAConfig()))


def test_avx2_trsr_and_imputer_defaults_create_no_bfloat16_tensor(avx2_only):
    from recllm.impute.llm import LLMImputer
    from recllm.bench.trsr.run import DATASETS, QUICK, bench_trsr_config
    from recllm.trsr.ranker import LLMRanker, RankQuery

    lm = tiny_causal_lm(seed=2)
    config = bench_trsr_config("hierarchical", QUICK, DATASETS[0], 0, fine_tune=False).ranker  # the demo's
    ranker = LLMRanker(lm, config, fine_tune=False, show_progress=False).fit([], [], [])
    assert ranker.lm_ is lm  # float32 scoring needs no copy
    query = RankQuery("Likes quiet science fiction.", ("Solaris", "Moon"))
    _no_bfloat16(lambda: ranker.score([query], [["Blade Runner", "Heat", "Alien"]], use_cache=False))

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"age": rng.integers(18, 70, 16).astype(float),
                          "occupation": rng.choice(["student", "engineer"], 16)})
    masked = table.mask(pd.DataFrame({"age": [i % 5 == 0 for i in range(16)],
                                      "occupation": [i % 7 == 0 for i in range(16)]}))
    imputer = LLMImputer(model=lm, cache=False, max_train_examples=8, max_categories=5)  # default precision
    _no_bfloat16(lambda: imputer.fit(masked).transform(masked))
    assert imputer.fit_report_["inference_dtype"] == "float32"
