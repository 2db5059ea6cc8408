"""Tiny synthetic data for LEARN tests (a module with a unique name: every test folder has a conftest)."""

import numpy as np
import pandas as pd
import pytest

from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import leave_one_out


def cyclic_dataset(n_users: int = 60, n_items: int = 30, length: int = 10, seed: int = 0) -> RecDataset:
    rng = np.random.default_rng(seed)
    # time 100 (s + t) + u: items come out over time (later items are new in a cold-start split)
    rows = [(f"u{u}", f"i{(s + t) % n_items}", 100 * (s + t) + u)
            for u, s in enumerate(rng.integers(n_items, size=n_users)) for t in range(length)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                          "title": [f"episode {i} of a {('red', 'green', 'blue')[i % 3]} series" for i in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("cyclic", inter, items, users, Schema(item_text=("title",)))


def cyclic_content(n_items: int = 30, noise: int = 6, seed: int = 0) -> np.ndarray:
    """Fourier features of the item's position on the cycle (+ noise columns): the next item is predictable."""
    angle = 2 * np.pi * np.arange(n_items) / n_items
    waves = [np.cos(k * angle) for k in range(1, 6)] + [np.sin(k * angle) for k in range(1, 6)]
    rng = np.random.default_rng(seed)
    return np.concatenate([np.stack(waves, 1), 0.1 * rng.normal(size=(n_items, noise))], 1).astype(np.float32)


TINY = dict(dim=16, out_dim=16, n_heads=2, max_len=8, adaptor_hidden=32, max_epochs=20, patience=20, lr=3e-3,
            show_progress=False)


def with_unengaged_items(n_items: int = 30) -> tuple[RecDataset, np.ndarray]:
    """The cyclic data plus ``n_items`` catalogue items nobody engages with; each looks like an engaged item
    except for one flag column of its content."""
    base = cyclic_dataset(n_items=n_items)
    extra = pd.DataFrame({"item_id": [f"x{i}" for i in range(n_items)], "title": [f"unread {i}" for i in range(n_items)]})
    data = RecDataset("cyclic+unengaged", base.interactions, pd.concat([base.items, extra], ignore_index=True),
                      base.users, base.schema)
    content = cyclic_content(n_items)
    flag = np.repeat([[0.0], [1.0]], n_items, axis=0).astype(np.float32)
    return data, np.concatenate([np.concatenate([content, content]), flag], axis=1)


# Session fixtures over the data above, imported by the conftest of every folder whose tests use them.
@pytest.fixture(scope="session")
def dataset():
    return cyclic_dataset()


@pytest.fixture(scope="session")
def content():
    return cyclic_content()


@pytest.fixture(scope="session")
def loo(dataset):
    return leave_one_out(dataset)
