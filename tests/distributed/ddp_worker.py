"""Run under torchrun by test_ddp.py (or in one process): fit a tiny SASRec, rank 0 writes its loss curve.

``python ddp_worker.py OUT [CHECKPOINT_DIR [DIE_AT]]``: with a checkpoint folder the fit resumes from it; with
``DIE_AT`` rank 0 kills its process right after writing that epoch's checkpoint (a crash mid-fit).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd
import torch

from recllm.data.dataset import RecDataset, Schema
from recllm.data.split import leave_one_out
from recllm.distributed.ddp import write_atomically
from recllm.models.sasrec import SASRec

SETTINGS = dict(loss="ce", dim=16, n_heads=2, n_layers=1, max_len=6, dropout=0.0, batch_size=8, max_epochs=3,
                patience=5, lr=5e-3, device="cpu", show_progress=False, seed=3)


def dataset(n_users: int = 24, n_items: int = 15) -> RecDataset:
    """Users of different history lengths (so windows hold different numbers of targets)."""
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{(s + t) % n_items}", 100 * u + t)
            for u, s in enumerate(rng.integers(n_items, size=n_users)) for t in range(4 + u % 7)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "title": [f"item {i}" for i in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("ddp-toy", inter, items, users, Schema(item_text=("title",)))


def fit(checkpoint_dir: str | None = None, data: RecDataset | None = None, **settings) -> SASRec:
    """SASRec with ``SETTINGS`` (updated by ``settings``) fitted on ``data`` (default: :func:`dataset`)."""
    torch.set_num_threads(1)
    split = leave_one_out(dataset() if data is None else data)
    return SASRec(**{**SETTINGS, **settings}, checkpoint_dir=checkpoint_dir).fit(split)


LEARN_SETTINGS = dict(dim=16, out_dim=16, n_heads=2, n_layers=1, max_len=6, dropout=0.0, batch_size=8, max_epochs=3,
                      patience=5, lr=5e-3, device="cpu", show_progress=False, seed=3, dense_weight=0.0)


def fit_learn(checkpoint_dir: str | None = None, **settings):  # noqa: ANN201
    """LEARN with ``LEARN_SETTINGS`` (updated by ``settings``) over fixed random item content on :func:`dataset`."""
    from recllm.learn import LEARN

    torch.set_num_threads(1)
    data = dataset()
    content = np.random.default_rng(7).normal(size=(data.n_items, 8)).astype(np.float32)
    return LEARN(content_embeddings=content, **{**LEARN_SETTINGS, **settings},
                 checkpoint_dir=checkpoint_dir).fit(leave_one_out(data))


def die_after(epoch: int, how=None) -> None:  # noqa: ANN001
    """Make the process end right after the checkpoint of ``epoch`` is written (``how``: raise instead)."""
    from recllm.distributed.checkpoint import EpochCheckpoint

    save = EpochCheckpoint.save

    def save_then_die(self, meta, tensors):  # noqa: ANN001
        save(self, meta, tensors)
        if meta["epoch"] == epoch:
            if how is not None:
                raise how
            os._exit(3)

    EpochCheckpoint.save = save_then_die


def main(out: str, checkpoint_dir: str | None = None, die_at: int | None = None) -> None:
    if die_at is not None:
        die_after(die_at)
    # $BUDGET_RANK: that rank alone has a time budget it exceeds after the first epoch
    budget = {"time_budget": 1e-9} if os.environ.get("RANK", "0") == os.environ.get("BUDGET_RANK") else {}
    settings = json.loads(os.environ.get("WORKER_SETTINGS", "{}"))  # e.g. a loss and dropout that draw numbers
    model = (fit_learn if os.environ.get("WORKER_MODEL") == "learn" else fit)(checkpoint_dir, **budget, **settings)

    def write(folder):
        (folder / "losses.json").write_text(json.dumps({
            "steps": model.step_losses_, "history": model.history_,
            "weights": {k: v.tolist() for k, v in model.net_.state_dict().items()}}))

    write_atomically(out, write)


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]), *(int(a) for a in sys.argv[3:4]))
