"""Exact and faiss indexes agree; exclusions work; bad input is refused."""

import numpy as np
import pytest

from recllm.learn.index import ExactIndex, build_index, top_k


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200, 8)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_top_k_order():
    idx, vals = top_k(np.array([[0.1, 0.9, 0.5, -np.inf]]), 3)
    assert idx.tolist() == [[1, 2, 0]] and vals[0].tolist() == pytest.approx([0.9, 0.5, 0.1])


def test_exact_matches_brute_force_and_excludes(vectors):
    index = ExactIndex(vectors)
    q = vectors[:5]
    idx, vals = index.search(q, 4)
    assert idx[:, 0].tolist() == [0, 1, 2, 3, 4]  # each unit vector is its own nearest
    idx2, _ = index.search(q, 4, exclude=[np.array([i]) for i in range(5)])
    np.testing.assert_array_equal(idx2[:, :3], idx[:, 1:4])
    full = np.argsort(-(q @ vectors.T), axis=1)[:, :4]
    np.testing.assert_array_equal(idx, full)


def test_short_catalogue_pads_with_minus_one(vectors):
    idx, vals = ExactIndex(vectors[:3]).search(vectors[:1], 5, exclude=[np.array([0])])
    assert idx.shape == (1, 3) and idx[0, -1] == -1 and np.isneginf(vals[0, -1])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_faiss_agrees_with_exact(vectors, kind, tmp_path):
    pytest.importorskip("faiss")
    exact = ExactIndex(vectors)
    index = build_index(vectors, kind)
    exclude = [np.array([0, 5]), np.array([], dtype=np.int64)]
    e_idx, e_val = exact.search(vectors[:2], 10, exclude)
    f_idx, f_val = index.search(vectors[:2], 10, exclude)
    assert 0 not in f_idx[0] and 5 not in f_idx[0]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(e_idx, f_idx)])
    assert overlap >= (1.0 if kind == "flat" else 0.9)
    index.save(tmp_path / "i.faiss")
    from recllm.learn.index import FaissIndex

    again = FaissIndex.load(tmp_path / "i.faiss", kind)
    np.testing.assert_array_equal(again.search(vectors[:2], 10, exclude)[0], f_idx)


def test_bad_input(vectors):
    with pytest.raises(ValueError, match="kind"):
        build_index(vectors, "lsh")
    with pytest.raises(ValueError, match="dimension"):
        ExactIndex(vectors).search(np.zeros((1, 3)), 2)
