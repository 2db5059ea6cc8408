"""Bad-input suite set-up: a work folder to snapshot, sentinels that fail any heavy load, a tiny LEARN artifact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The folder a case's files live in; the parsed-data cache goes elsewhere."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RECLLM_DATA_URL", raising=False)
    monkeypatch.chdir(folder)
    # as outside any git checkout: the cases are about arguments, not about the state of this working tree (the
    # clean-tree rule of benchmark reports is tested in tests/bench/test_bench_reporting.py)
    monkeypatch.setattr("recllm.bench.reporting.code_checkout", lambda package=None: None)
    return folder


@pytest.fixture
def no_heavy_loads(monkeypatch):
    """Loading a data set or a model's weights fails the case: argument errors must come before either."""
    import transformers

    from recllm.data.loaders.base import DatasetLoader

    def refuse(*args, **kwargs):
        raise AssertionError("a data set or model was loaded before the arguments were checked")

    monkeypatch.setattr(DatasetLoader, "__call__", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", refuse)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """A LEARN artifact (ID item tower, one epoch) of 20 users x 12 items; users "u0".."u19", items "i0".."i11"."""
    from recllm.data.dataset import RecDataset, Schema
    from recllm.data.split import leave_one_out
    from recllm.learn import LEARN, save

    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{(s + t) % 12}", 100 * t + u) for u, s in enumerate(rng.integers(12, size=20)) for t in range(6)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(12)], "title": [f"film {i}" for i in range(12)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(20)]})
    dataset = RecDataset("tiny", inter, items, users, Schema(item_text=("title",)))
    model = LEARN(item_input="id", dim=8, out_dim=8, n_heads=2, max_len=4, adaptor_hidden=8, max_epochs=1,
                  patience=1, show_progress=False).fit(leave_one_out(dataset))
    return save(model, tmp_path_factory.mktemp("artifact") / "art", dataset)


@pytest.fixture
def artifact_copy(work, tiny_artifact):
    """The tiny artifact copied into the work folder as ``art`` (so the snapshot covers it)."""
    shutil.copytree(tiny_artifact, work / "art")
    return work / "art"
