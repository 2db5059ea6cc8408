"""Shared test set-up: deliberate thread counts (2 cores; oversubscription is the worst pitfall)."""

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch

    torch.set_num_threads(int(os.environ.get("RECLLM_TEST_THREADS", "2")))
    yield


@pytest.fixture(scope="session")
def shared_data():
    """Path of the real data sets ($RECLLM_DATA); tests that need it skip with a reason otherwise."""
    from pathlib import Path

    root = os.environ.get("RECLLM_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("RECLLM_DATA is not set to the shared data folder")
    return Path(root)


@pytest.fixture(autouse=True)
def _great_checkpoints_in_tmp(tmp_path_factory, monkeypatch):
    """GReaT's resumable fine-tunes (``checkpoint_root="cache"``, as the imputation benchmark passes) write their
    checkpoints under a temporary folder in tests, not into the user's recllm cache; every other cache is the
    user's as before (the converted SmolLM2 folder is reused)."""
    import recllm.utils

    real = recllm.utils.cache_dir
    root = tmp_path_factory.getbasetemp() / "great-runs"

    def cache_dir(*parts: str):
        if tuple(parts) == ("impute", "great-runs"):
            root.mkdir(parents=True, exist_ok=True)
            return root
        return real(*parts)

    monkeypatch.setattr(recllm.utils, "cache_dir", cache_dir)


@pytest.fixture
def shop_folder(tmp_path, monkeypatch):
    """A data folder of a user's own files (``--data FOLDER``): 16 shoppers x 6 events over 10 items, whose
    items.csv titles them "Mug model <i>"; the recllm cache goes under ``tmp_path``."""
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "".join(
        f"c{u},sku{(3 * u + t) % 10},2024-03-{1 + t:02d}T10:{u:02d}:00\n" for u in range(16) for t in range(6)))
    (folder / "items.csv").write_text("item_id,title\n" + "".join(f"sku{i},Mug model {i}\n" for i in range(10)))
    return folder


@pytest.fixture
def placeholder_data(tmp_path_factory, monkeypatch):
    """$RECLLM_DATA set to a folder holding every registry data set's files, empty: a command's check that its
    data is here passes (nothing is parsed), so a test that replaces the work needs no real data."""
    from recllm.data.loaders import DATASETS

    root = tmp_path_factory.mktemp("data")
    for name, loader in DATASETS.items():
        (root / name).mkdir()
        for file in loader.files:
            (root / name / file.name).touch()
    monkeypatch.setenv("RECLLM_DATA", str(root))
    return root
