"""Each data test gets its own parsed-data cache and never reaches a real download server."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "recllm-cache"))
    monkeypatch.delenv("RECLLM_DATA_URL", raising=False)
    yield
