"""LEARN passes the shared Recommender contract (tests/models/contract.py) in its content and ID variants."""

import numpy as np
import pytest

from recllm.learn import LEARN
from tests.models.contract import check_recommender, planted_sequence_split


def chain_content(split) -> np.ndarray:
    """What a text encoder would see in "item c<chain>_<step>": the chain (one-hot) and the step (waves)."""
    rows = []
    for item in split.dataset.items["item_id"]:
        chain, step = (item[1:].split("_") if "_" in item else ("-1", "0"))
        onehot = np.eye(5)[int(chain)] if chain != "-1" else np.eye(5)[4]
        angle = 2 * np.pi * int(step) / 16
        rows.append(np.r_[onehot, [np.cos(k * angle) for k in (1, 2, 3)], [np.sin(k * angle) for k in (1, 2, 3)]])
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("variant,tower", [("content", "shared"), ("id", "mlp")])
def test_learn_passes_contract(variant, tower):
    split = planted_sequence_split()
    content = chain_content(split) if variant != "id" else None
    params = dict(dim=16, out_dim=16, n_heads=2, max_len=8, adaptor_hidden=32, lr=1e-2, max_epochs=20,
                  patience=20, dropout=0.0, item_input=variant, item_tower=tower, show_progress=False)
    check_recommender(lambda seed: LEARN(content_embeddings=content, seed=seed, **params), split=split)
