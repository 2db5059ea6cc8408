import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recllm.models.softmax import full_softmax_cross_entropy


def _reference(hidden, items, target, scale, exclude):
    logits = hidden @ items.T * scale
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, target)


def _inputs(rows=37, items=23, dim=8, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=gen, dtype=dtype, requires_grad=True)
    catalogue = torch.randn(items, dim, generator=gen, dtype=dtype, requires_grad=True)
    exclude = torch.zeros(items, dtype=torch.bool)
    exclude[[i for i in (3, 7, 19) if i < items]] = True
    allowed = torch.nonzero(~exclude)[:, 0]
    target = allowed[torch.randint(0, len(allowed), (rows,), generator=gen)]
    return hidden, catalogue, target, exclude


@pytest.mark.parametrize("scale", [1.0, 20.0])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk_elements", [1, 100, 10_000])  # one row a block, several rows, every row at once
def test_value_and_gradients_are_those_of_cross_entropy_on_the_full_logits(scale, masked, chunk_elements):
    hidden, items, target, exclude = _inputs()
    exclude = exclude if masked else None
    want = _reference(hidden, items, target, scale, exclude)
    want_grads = torch.autograd.grad(want, (hidden, items))
    got = full_softmax_cross_entropy(hidden, items, target, scale, exclude, chunk_elements=chunk_elements)
    got_grads = torch.autograd.grad(got, (hidden, items))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_grads, want_grads):  # float32 rounding, relative to the gradient's size
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))
    if masked:  # an excluded item gets no gradient from being a class
        assert torch.equal(got_grads[1][exclude], torch.zeros_like(got_grads[1][exclude]))


def test_gradcheck_in_float64():
    hidden, items, target, exclude = _inputs(rows=6, items=5, dim=3, dtype=torch.float64)
    exclude = torch.tensor([False, True, False, False, False])
    target = torch.tensor([0, 2, 3, 4, 0, 2])
    assert torch.autograd.gradcheck(
        lambda h, i: full_softmax_cross_entropy(h, i, target, 3.0, exclude, chunk_elements=10), (hidden, items))


def test_upstream_gradient_scales_the_result():
    hidden, items, target, _ = _inputs()
    (2.5 * full_softmax_cross_entropy(hidden, items, target, chunk_elements=50)).backward()
    got = hidden.grad.clone()
    hidden.grad = None
    (2.5 * _reference(hidden, items, target, 1.0, None)).backward()
    assert torch.allclose(got, hidden.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("bad, match", [
    (lambda h, i, t, e: (h[:, :3], i, t, e), "share d"),
    (lambda h, i, t, e: (h, i, t[:-1], e), "one item per row"),
    (lambda h, i, t, e: (h, i, t, e[:-1]), "one flag per item"),
])
def test_wrong_shapes_are_named(bad, match):
    hidden, items, target, exclude = bad(*_inputs())
    with pytest.raises(ValueError, match=match):
        full_softmax_cross_entropy(hidden, items, target, exclude=exclude)


@pytest.mark.parametrize("model", ["sasrec", "hstu"])
def test_the_sequence_models_full_softmax_loss_is_cross_entropy_over_their_similarity(model):
    """SASRec-CE and HSTU-CE train on the blocked loss: it must equal cross-entropy over the net's own similarity
    (HSTU's divides by its temperature), the held-out new items excluded as classes."""
    from recllm.models import HSTU, SASRec

    cls = SASRec if model == "sasrec" else HSTU
    est = cls(loss="ce", dim=16, n_layers=1, n_heads=1, max_len=6, dropout=0.0, seed=0)
    from recllm.models.hstu import HSTUNet
    from recllm.models.sasrec import SASRecNet

    n_items = 12
    est.net_ = (SASRecNet if model == "sasrec" else HSTUNet)(n_items, est.config)
    est.known_items_ = torch.arange(10)
    est.future_items_ = torch.tensor([False] * 10 + [True, True])
    rows = torch.tensor([[0, 0, 1, 2, 3, 4, 5], [0, 3, 4, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6, 7]])
    got = est._batch_loss(rows, torch.Generator().manual_seed(0))
    net, inp, tgt = est.net_, rows[:, :-1], rows[:, 1:]
    hidden = net(inp)[inp > 0]
    logits = net.similarity(hidden, net.item_vectors()).masked_fill(est.future_items_, float("-inf"))
    want = F.cross_entropy(logits, tgt[inp > 0] - 1)
    assert np.isclose(float(got), float(want), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_take_the_softmax_in_float32(dtype):
    """As F.cross_entropy of the half-precision logits taken in float32 (autocast's way): the log-sum-exps are not
    rounded to the inputs' 8 or 11 bits, which would shift the loss by ~0.1 at log-sum-exps near 16."""
    hidden, items, target, exclude = _inputs(rows=256, items=2000, dim=16)
    hidden, items = hidden.detach().to(dtype).requires_grad_(), items.detach().to(dtype).requires_grad_()
    want = F.cross_entropy(((hidden * 4.0) @ items.T).float().masked_fill(exclude, float("-inf")), target)
    got = full_softmax_cross_entropy(hidden, items, target, 4.0, exclude, chunk_elements=10_000)
    assert got.dtype == torch.float32 and abs(got.item() - want.item()) < 1e-4 * max(1.0, want.item())
    for g, w in zip(torch.autograd.grad(got, (hidden, items)), torch.autograd.grad(want, (hidden, items))):
        assert g.dtype == dtype and torch.allclose(g.float(), w.float(), rtol=2e-2, atol=2e-2 * float(w.abs().max()))
