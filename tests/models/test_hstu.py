"""HSTU: block shapes, no future leakage (with and without time bias), bucketing, learns a planted rule."""

import numpy as np
import pandas as pd
import pytest
import torch

from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import leave_one_out
from recllm.eval.ranking import evaluate_full_ranking
from recllm.models import MODELS
from recllm.models.hstu import HSTU, HSTUBlock, HSTUConfig, time_buckets


def cyclic_split(n_users: int = 40, n_items: int = 20, length: int = 10):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{(s + t) % n_items}", 100 * u + t)
            for u, s in enumerate(rng.integers(n_items, size=n_users)) for t in range(length)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"item {i}" for i in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return leave_one_out(RecDataset("cyclic", inter, items, users, Schema(item_text=("title",))))


def make_block(**kw):
    torch.manual_seed(0)
    args = dict(dim=8, n_heads=2, attention_dim=4, linear_dim=3, max_len=6, dropout=0.0, n_time_buckets=16)
    return HSTUBlock(**{**args, **kw}).eval()


def test_block_shape():
    block = make_block()
    x = torch.randn(3, 5, 8)
    valid = torch.ones(3, 5, dtype=torch.bool)
    assert block(x, valid).shape == (3, 5, 8)
    assert block.relative_bias(5, None).shape == (1, 5, 5)
    assert block.relative_bias(5, torch.arange(15).view(3, 5)).shape == (3, 5, 5)


@pytest.mark.parametrize("with_time", [False, True])
def test_block_is_causal(with_time):
    block = make_block()
    x = torch.randn(2, 6, 8)
    valid = torch.ones(2, 6, dtype=torch.bool)
    ts = torch.cumsum(torch.randint(1, 1000, (2, 6)), dim=1) if with_time else None
    changed = x.clone()
    changed[:, 4:] = torch.randn(2, 2, 8)
    a, b = block(x, valid, ts), block(changed, valid, ts)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_padding_never_leaks():
    block = make_block()
    x = torch.randn(1, 6, 8)
    valid = torch.tensor([[False, False, True, True, True, True]])
    changed = x.clone()
    changed[:, :2] = torch.randn(1, 2, 8) * 10
    torch.testing.assert_close(block(x, valid)[:, 2:], block(changed, valid)[:, 2:])


def test_attention_is_silu_over_length_not_softmax():
    """With Q, K = 0 and no bias every weight is SiLU(0) = 0: the block reduces to x + W_o(U * LN(0)) = x + b_o."""
    block = make_block()
    with torch.no_grad():
        block.rel_pos.zero_()
    x = torch.randn(1, 4, 8)
    width = 2 * 3 * 2
    with torch.no_grad():
        block.uvqk[:, width:] = 0.0  # zero the Q and K projections
    out = block(x, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(out, x + block.o.bias)


def test_time_buckets():
    gaps = torch.tensor([0, 1, 2, 10, 100, -100, 10**12])
    expected = [0, 0, int(np.log(2) / 0.301), int(np.log(10) / 0.301), int(np.log(100) / 0.301),
                int(np.log(100) / 0.301), 16]
    assert time_buckets(gaps, 16).tolist() == expected


def test_registered_and_learns():
    assert MODELS["hstu"] is HSTU
    split = cyclic_split()
    model = HSTU(dim=16, max_len=8, attention_dim=8, linear_dim=8, n_negatives=8, max_epochs=25, patience=25,
                 lr=5e-3, show_progress=False).fit(split)
    result = evaluate_full_ranking(model, split.eval_cases("test"), ks=(5,), show_progress=False)
    assert result.mean()["hr@5"] > 0.9, result.mean()


def test_config_validation():
    with pytest.raises(ValueError, match="temperature"):
        HSTUConfig(temperature=0)
    with pytest.raises(ValueError, match="attention_dim"):
        HSTU(attention_dim=0)
    with pytest.raises(ValueError, match="max_len"):
        make_block()(torch.randn(1, 7, 8), torch.ones(1, 7, dtype=torch.bool))
