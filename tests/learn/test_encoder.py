"""Content embeddings: whitening removes anisotropy; encoding goes through recllm.llm with its disk cache."""

import numpy as np
import pytest

from recllm.learn.encoder import ContentConfig, Whitener, item_content_embeddings, mean_pairwise_cosine


def anisotropic(n=300, width=32, seed=0):
    rng = np.random.default_rng(seed)
    return (5.0 + rng.normal(size=(n, width)) * np.linspace(0.05, 1.0, width)).astype(np.float32)


def test_whitening_removes_anisotropy():
    x = anisotropic()
    assert mean_pairwise_cosine(x) > 0.95
    w = Whitener.fit(x, "whiten", dim=None)
    z = w.transform(x)
    assert abs(mean_pairwise_cosine(z)) < 0.05
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(z.shape[1]), atol=1e-3)
    assert Whitener.fit(x, "whiten", dim=8).transform(x).shape == (300, 8)
    centred = Whitener.fit(x, "center").transform(x)
    np.testing.assert_allclose(centred.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_array_equal(Whitener.fit(x, "none").transform(x), x)


def test_config_validation():
    assert ContentConfig(model="minilm").resolved_kind() == "sentence"
    assert ContentConfig(model="org/some-llm").resolved_kind() == "causal"
    with pytest.raises(ValueError, match="whiten"):
        ContentConfig(whiten="pca")
    with pytest.raises(ValueError, match="kind"):
        ContentConfig(kind="seq2seq")


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(max_length=1.5), "max_length"), (dict(max_length=True), "max_length"), (dict(batch_size="32"), "batch_size"),
     (dict(whiten_dim=1.5), "whiten_dim"), (dict(whiten_dim="256"), "whiten_dim")],
)
def test_content_config_names_the_bad_field(kwargs, field):
    """A fractional max_length / whiten_dim was accepted (and failed inside the tokenizer or the whitening)."""
    with pytest.raises(ValueError, match=rf"ContentConfig\.{field} must be a positive integer"):
        ContentConfig(**kwargs)
    assert ContentConfig(max_length=np.int64(64), whiten_dim=np.int64(8)).whiten_dim == 8


def test_item_content_embeddings_with_tiny_lm(tmp_path):
    llm = pytest.importorskip("recllm.llm")
    if not hasattr(llm, "embed_texts"):
        pytest.skip("recllm.llm.embed_texts has not landed yet")
    from learn_synthetic import cyclic_dataset

    from recllm.llm.cache import DiskCache

    lm = llm.tiny_causal_lm(seed=0)
    cache = DiskCache(tmp_path / "c.sqlite", namespace="t")
    config = ContentConfig(model="tiny", whiten="whiten", whiten_dim=16, max_length=32)
    emb, whitener = item_content_embeddings(cyclic_dataset(), config, cache=cache, model=lm)
    assert emb.shape == (30, 16) and np.isfinite(emb).all()
    assert whitener.projection.shape[1] == 16
    assert len(cache) > 0  # encoded through recllm.llm's disk cache


def test_the_embedding_bar_follows_show_progress(monkeypatch):
    """`recllm learn train --quiet` (LEARN's show_progress=False) asks recllm.llm for no embedding progress bar."""
    import recllm.llm
    from learn_synthetic import cyclic_dataset

    asked = []

    def embed_texts(model, texts, **options):
        asked.append(options["show_progress"])
        return np.ones((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(recllm.llm, "embed_texts", embed_texts)
    config = ContentConfig(model="tiny", whiten="none", max_length=32)
    for show in (False, True):
        monkeypatch.setattr("recllm.learn.encoder._MEMO", {})  # each call embeds: no in-memory reuse
        item_content_embeddings(cyclic_dataset(), config, cache=False, model=object(), show_progress=show)
    assert asked == [False, True]
