"""Artifact round trip: same recommendations and similar items after load; atomic overwrite; clear errors."""

import json

import numpy as np
import pytest

from recllm.learn import load, save


@pytest.mark.parametrize("index", ["exact", "flat"])
def test_round_trip(fitted, dataset, tmp_path, index):
    if index != "exact":
        pytest.importorskip("faiss")
    folder = save(fitted, tmp_path / "art", dataset, index=index)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "item_embeddings.npy", "item_ids.json", "user_ids.json",
            "histories.safetensors"} <= names
    retriever = load(folder)
    np.testing.assert_allclose(retriever.item_vectors, fitted.item_vectors_)
    hist = retriever.history("u3")
    assert [retriever.item_ids[i] for i in hist] == list(dataset.interactions.query("user_id == 'u3'")["item_id"])
    expected_idx, _ = fitted.recommend(np.array([3]), [hist], k=5)
    got = retriever.recommend("u3", k=5)
    assert [item for item, _ in got] == [dataset.items["item_id"][i] for i in expected_idx[0]]
    assert not set(item for item, _ in got) & {retriever.item_ids[i] for i in hist}
    scores = fitted.score(np.array([3]), [hist])[0]
    assert [s for _, s in got] == pytest.approx(sorted(scores[np.setdiff1d(np.arange(30), hist)], reverse=True)[:5], abs=1e-5)
    similar = retriever.similar_items("i4", k=3)
    assert len(similar) == 3 and "i4" not in [i for i, _ in similar]


def test_overwrite_and_errors(fitted, dataset, tmp_path):
    folder = save(fitted, tmp_path / "art", dataset)
    save(fitted, folder, dataset)  # replaces an existing artifact
    assert json.loads((folder / "config.json").read_text())["format"] == "recllm-learn/1"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    retriever = load(folder)
    with pytest.raises(KeyError, match="not in this artifact"):
        retriever.recommend("nobody")
    with pytest.raises(KeyError, match="catalogue"):
        retriever.similar_items("no-such-item")
    with pytest.raises(FileNotFoundError, match="not a LEARN artifact"):
        load(tmp_path / "missing")
    with pytest.raises(ValueError, match="index"):
        save(fitted, tmp_path / "x", dataset, index="annoy")
