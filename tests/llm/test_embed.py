"""Text embeddings: pooling equals a manual unpadded forward; truncation, caching and encoder dispatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recllm.llm.backbone import CausalLM, llm_code_version
from recllm.llm.embed import embed_texts, encoder_fingerprint

TEXTS = ["Alien (1979), science fiction horror", "Toy Story", "A long, slow drama about a family farm in winter", "x"]


def _manual_hidden(lm: CausalLM, text: str, max_length: int = 128) -> torch.Tensor:
    ids = lm.tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt").input_ids
    with torch.no_grad():
        return lm.model.get_decoder()(input_ids=ids).last_hidden_state[0]


def test_mean_and_last_pooling_match_an_unpadded_forward(tiny_lm: CausalLM) -> None:
    mean = embed_texts(tiny_lm, TEXTS, batch_size=3, show_progress=False)
    last = embed_texts(tiny_lm, TEXTS, pooling="last", batch_size=3, show_progress=False)
    assert mean.shape == (len(TEXTS), tiny_lm.model.config.hidden_size) and mean.dtype == np.float32
    for i, text in enumerate(TEXTS):
        hidden = _manual_hidden(tiny_lm, text)
        np.testing.assert_allclose(mean[i], hidden.mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(last[i], hidden[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(embed_texts(tiny_lm, TEXTS, batch_size=1, show_progress=False), mean, atol=1e-5)


def test_max_length_truncates(tiny_lm: CausalLM) -> None:
    long_text = " ".join(["word"] * 50)
    got = embed_texts(tiny_lm, [long_text], max_length=8, show_progress=False)[0]
    np.testing.assert_allclose(got, _manual_hidden(tiny_lm, long_text, max_length=8).mean(0).numpy(), atol=1e-5)
    assert not np.allclose(got, embed_texts(tiny_lm, [long_text], max_length=64, show_progress=False)[0])


def test_cache_reuses_vectors_per_text(tiny_lm: CausalLM, dict_cache, monkeypatch) -> None:
    first = embed_texts(tiny_lm, TEXTS + TEXTS[:1], cache=dict_cache, show_progress=False)
    assert dict_cache.puts == len(TEXTS)
    np.testing.assert_array_equal(first[-1], first[0])

    def no_forward(*args, **kwargs):
        raise AssertionError("the model ran although every vector was cached")

    with monkeypatch.context() as patch:
        patch.setattr(tiny_lm.model, "forward", no_forward)
        np.testing.assert_array_equal(embed_texts(tiny_lm, TEXTS, cache=dict_cache, show_progress=False), first[:-1])
    embed_texts(tiny_lm, TEXTS[:1], pooling="last", cache=dict_cache, show_progress=False)
    assert dict_cache.puts == len(TEXTS) + 1  # pooling is part of the key


class FakeEncoder(torch.nn.Module):
    """Stands in for a sentence-transformers model: encode() returns the text length in every coordinate."""

    recllm_name = "fake-encoder"

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.max_seq_length = 256
        self.seen_max_lengths: list[int] = []

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts, batch_size=32, show_progress_bar=False, convert_to_numpy=True):
        self.seen_max_lengths.append(self.max_seq_length)
        return np.array([[len(t)] * 3 for t in texts], dtype=np.float64)


def test_encoder_dispatch_applies_max_length_and_restores_it(dict_cache) -> None:
    encoder = FakeEncoder()
    got = embed_texts(encoder, TEXTS, max_length=64, cache=dict_cache, show_progress=False)
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_array_equal(got[:, 0], [len(t) for t in TEXTS])
    assert encoder.seen_max_lengths == [64] and encoder.max_seq_length == 256
    assert encoder_fingerprint(encoder) == f"fake-encoder|float32|code={llm_code_version()}"
    assert embed_texts(encoder, [], show_progress=False).shape == (0, 3)
    with pytest.raises(ValueError, match="own pooling"):
        embed_texts(encoder, TEXTS, pooling="last")


def test_bad_input_names_the_text(tiny_lm: CausalLM) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        embed_texts(tiny_lm, ["fine", "  "])
    with pytest.raises(TypeError, match=r"texts\[0\] is float"):
        embed_texts(tiny_lm, [float("nan")])
    with pytest.raises(TypeError, match="sequence of strings"):
        embed_texts(tiny_lm, "one text")
    with pytest.raises(ValueError, match="pooling"):
        embed_texts(tiny_lm, TEXTS, pooling="max")
