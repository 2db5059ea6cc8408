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


def _pair_inputs(seed=0, windows=4, per_window=5, candidates=9, dim=6, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    rows = windows * per_window
    hidden = torch.randn(rows, dim, generator=gen, dtype=dtype, requires_grad=True)
    items = torch.randn(candidates, dim, generator=gen, dtype=dtype, requires_grad=True)
    member = torch.rand(windows, candidates, generator=gen) < 0.3
    member[-1] = True  # the last window holds every candidate: its rows have no negative
    window = torch.arange(windows).repeat_interleave(per_window)
    pair_rows = torch.randint(0, rows, (2 * rows,), generator=gen)
    pair_targets = torch.randint(0, candidates, (2 * rows,), generator=gen)
    weights = torch.rand(2 * rows, generator=gen, dtype=dtype)
    return hidden, items, member, window, pair_rows, pair_targets, weights


@pytest.mark.parametrize("chunk_elements", [1, 30, 10_000])
@pytest.mark.parametrize("scale", [1.0, 5.0])
def test_blocked_pairs_info_nce_is_the_reference_form_in_value_and_gradients(chunk_elements, scale):
    """The training loss (blocked logits) against info_nce_pairs on the full logits: weighted pairs, rows sharing
    queries, a window whose rows have no negative at all."""
    from recllm.learn.losses import blocked_pairs_info_nce, negative_logsumexp

    hidden, items, member, window, pair_rows, pair_targets, weights = _pair_inputs()
    logits = hidden @ items.T * scale
    negatives = ~member[window]
    neg_lse = negative_logsumexp(logits, negatives)
    pos = logits[pair_rows, pair_targets]
    want = (weights * (torch.logaddexp(pos, neg_lse[pair_rows]) - pos)).sum()
    got = blocked_pairs_info_nce(hidden, items, scale, member, window, pair_rows, pair_targets, weights,
                                 chunk_elements=chunk_elements)
    assert torch.allclose(got, want, rtol=1e-5)
    for g, w in zip(torch.autograd.grad(got, (hidden, items)), torch.autograd.grad(want, (hidden, items))):
        assert torch.isfinite(g).all() and torch.allclose(g, w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))
    # one pair alone is info_nce_pairs' mean over one pair
    one = blocked_pairs_info_nce(hidden, items, scale, member, window, pair_rows[:1], pair_targets[:1],
                                 torch.ones(1))
    assert one.item() == pytest.approx(info_nce_pairs(logits, negatives, pair_rows[:1], pair_targets[:1]).item(),
                                       rel=1e-5)


def test_blocked_pairs_info_nce_gradcheck_in_float64():
    from recllm.learn.losses import blocked_pairs_info_nce

    hidden, items, member, window, pair_rows, pair_targets, weights = _pair_inputs(
        windows=2, per_window=2, candidates=4, dim=3, dtype=torch.float64)
    member[-1] = False
    member[-1, 0] = True
    assert torch.autograd.gradcheck(
        lambda h, i: blocked_pairs_info_nce(h, i, 2.0, member, window, pair_rows, pair_targets, weights,
                                            chunk_elements=5), (hidden, items))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_blocked_pairs_info_nce_takes_half_precision_log_sum_exps_in_float32(dtype):
    """Half-precision inputs: the logits are made in their dtype, the log-sum-exps and the loss in float32 (as the
    reference form on the half-precision logits cast to float32); gradients come back in the inputs' dtype."""
    from recllm.learn.losses import blocked_pairs_info_nce, negative_logsumexp

    hidden, items, member, window, pair_rows, pair_targets, weights = _pair_inputs()
    hidden, items = hidden.detach().to(dtype).requires_grad_(), items.detach().to(dtype).requires_grad_()
    logits = ((hidden * 5.0) @ items.T).float()
    pos = (hidden[pair_rows].float() * items[pair_targets].float()).sum(-1) * 5.0
    neg_lse = negative_logsumexp(logits, ~member[window])
    want = (weights * (torch.logaddexp(pos, neg_lse[pair_rows]) - pos)).sum()
    got = blocked_pairs_info_nce(hidden, items, 5.0, member, window, pair_rows, pair_targets, weights,
                                 chunk_elements=30)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(want.item(), rel=1e-4)
    for g, w in zip(torch.autograd.grad(got, (hidden, items)), torch.autograd.grad(want, (hidden, items))):
        assert g.dtype == dtype and torch.allclose(g.float(), w.float(), rtol=2e-2, atol=2e-2 * float(w.abs().max()))


def test_blocked_pairs_info_nce_names_wrong_shapes():
    from recllm.learn.losses import blocked_pairs_info_nce

    hidden, items, member, window, pair_rows, pair_targets, weights = _pair_inputs()
    with pytest.raises(ValueError, match="share d"):
        blocked_pairs_info_nce(hidden[:, :2], items, 1.0, member, window, pair_rows, pair_targets, weights)
    with pytest.raises(ValueError, match="member must be"):
        blocked_pairs_info_nce(hidden, items, 1.0, member[:, :-1], window, pair_rows, pair_targets, weights)
    with pytest.raises(ValueError, match="must be \\(P,\\)"):
        blocked_pairs_info_nce(hidden, items, 1.0, member, window, pair_rows, pair_targets, weights[:-1])
