"""Recency weights, InfoNCE and dense all-action sampling against hand-computed values."""

import math

import pytest
import torch

from recllm.learn.losses import dense_action_pairs, info_nce, info_nce_pairs, recency_weights


def test_recency_weights_formula():
    w = recency_weights(5, alpha=10.0, beta=10000.0)
    expected = [math.log(10 + i * (10000 - 10) / 4) for i in range(5)]
    assert w.tolist() == pytest.approx(expected)
    assert w[0] == pytest.approx(math.log(10)) and w[-1] == pytest.approx(math.log(10000))
    assert torch.all(w[1:] > w[:-1])
    assert recency_weights(1).tolist() == pytest.approx([math.log(10)])
    with pytest.raises(ValueError):
        recency_weights(0)
    with pytest.raises(ValueError):
        recency_weights(3, alpha=1.0)


def test_info_nce_hand_computed():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = torch.tensor([0, 1])
    # query 0 logits (tau=0.5): [2, 0, 2]; query 1: [0, 4, 4]
    expected = 0.5 * (-math.log(math.e**2 / (math.e**2 + 1 + math.e**2)) - math.log(math.e**4 / (1 + 2 * math.e**4)))
    assert info_nce(q, c, t, 0.5).item() == pytest.approx(expected, rel=1e-6)
    exclude = torch.tensor([[False, False, True], [True, True, False]])  # query 1's own target stays in
    expected_ex = 0.5 * (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(math.e**4 / (math.e**4 + math.e**4)))
    assert info_nce(q, c, t, 0.5, exclude).item() == pytest.approx(expected_ex, rel=1e-6)


def test_dense_pairs_point_forward_within_window():
    rows = torch.tensor([[0, 0, 0, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8]])
    b, i, j = dense_action_pairs(rows, n_history=3, n_future=2, gen=torch.Generator().manual_seed(0))
    assert torch.all(j > i) and torch.all(rows[b, i] > 0) and torch.all(rows[b, j] > 0)
    assert torch.all(i < rows.shape[1] - 1)
    # row 1 has one history position (6) and one future item (7)
    assert sorted(zip(i[b == 1].tolist(), j[b == 1].tolist())) == [(6, 7)]
    counts = torch.bincount(b, minlength=3)
    assert counts[0] == 3 * 2 and counts[2] == 3 * 2
    pairs = set(zip(b.tolist(), i.tolist(), j.tolist()))
    assert len(pairs) == len(b)  # sampling without replacement


def test_dense_pairs_horizon_and_recency():
    rows = torch.arange(1, 42)[None].repeat(200, 1)  # 40 history positions
    b, i, j = dense_action_pairs(rows, n_history=1, n_future=3, horizon=2, gen=torch.Generator().manual_seed(1))
    assert torch.all(j - i <= 2)
    # recency weighting: the newest half of the positions is drawn more often than the oldest half
    assert (i >= 20).sum() > (i < 20).sum()
    with pytest.raises(ValueError):
        dense_action_pairs(rows, n_history=0)


def test_info_nce_pairs_equals_info_nce_with_other_positives_excluded():
    torch.manual_seed(0)
    logits = torch.randn(3, 6)
    own = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    rows, targets = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 4, 5])
    got = info_nce_pairs(logits, ~own, rows, targets)
    expected = torch.stack([
        info_nce(logits[r][None], torch.eye(6), t[None], 1.0, own[r][None]) for r, t in zip(rows, targets)
    ]).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    by_hand = -(logits[0, 0] - torch.log(torch.exp(logits[0, 0]) + torch.exp(logits[0, 2:]).sum()))
    assert info_nce_pairs(logits, ~own, rows[:1], targets[:1]).item() == pytest.approx(by_hand.item(), rel=1e-5)
