"""The real bundled models: SmolLM2-135M-Instruct (GGUF -> cached HF folder) and all-MiniLM-L6-v2. Short checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recllm.llm import (
    CausalLM,
    chat_prompt,
    embed_texts,
    generate,
    load_causal_lm,
    load_text_encoder,
    next_token_logprobs,
)
from recllm.llm.backbone import _GGUF_FILE, _GGUF_PACKAGE, _GGUF_WHEEL, _package_dir, llm_code_version

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm() -> CausalLM:
    return load_causal_lm(device="cpu", dtype="float32")


def test_default_model_loads_with_its_conventions(smollm: CausalLM) -> None:
    assert smollm.name == "SmolLM2-135M-Instruct"
    assert smollm.fingerprint == f"SmolLM2-135M-Instruct|float32|code={llm_code_version()}"
    n_params = sum(p.numel() for p in smollm.model.parameters())
    assert 130e6 < n_params < 140e6
    assert smollm.model.config.tie_word_embeddings
    # a plain dense checkpoint: no GGUF quantizer carried over from the source file
    assert getattr(smollm.model, "hf_quantizer", None) is None
    assert getattr(smollm.model.config, "quantization_config", None) is None
    assert smollm.tokenizer.pad_token == smollm.tokenizer.eos_token == "<|im_end|>"


def test_converted_folder_reproduces_the_gguf_logits(smollm: CausalLM) -> None:
    from transformers import AutoModelForCausalLM

    gguf = AutoModelForCausalLM.from_pretrained(
        _package_dir(_GGUF_PACKAGE, _GGUF_WHEEL), gguf_file=_GGUF_FILE, dtype=torch.float32
    ).eval()
    ids = smollm.tokenizer(chat_prompt(smollm, "Name a film."), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(gguf(**ids).logits, smollm.model(**ids).logits)


def test_generation_and_yes_no_scoring(smollm: CausalLM) -> None:
    answer = generate(smollm, [chat_prompt(smollm, "What is the capital of France?")], max_new_tokens=8,
                      show_progress=False)[0]
    assert answer.strip()
    yes_no = smollm.tokenizer.convert_tokens_to_ids(["Yes", "No"])
    prefix = chat_prompt(smollm, "The user liked Alien and Solaris. Will they like the next film? Film:")
    prefix = prefix[: prefix.index("<|im_end|>\n<|im_start|>assistant")]
    conts = [f" {t}<|im_end|>\n<|im_start|>assistant\n" for t in ("Moon", "Toy Story 3", "Gattaca (1997)")]
    shared = next_token_logprobs(smollm, prefix, conts, yes_no)
    full = next_token_logprobs(smollm, prefix, conts, yes_no, shared_prefix=False)
    np.testing.assert_allclose(shared, full, atol=1e-4)


def test_text_encoder_embeds_meaningfully() -> None:
    encoder = load_text_encoder(device="cpu")
    vectors = embed_texts(encoder, ["A film about space", "A movie set in outer space", "A recipe for bread"],
                          show_progress=False)
    assert vectors.shape == (3, 384) and np.isfinite(vectors).all()
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.2
