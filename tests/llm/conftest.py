"""Fixtures for recllm.llm tests: a tiny random llama with the real tokenizer, and a dict-backed cache."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest


class DictCache:
    """In-memory stand-in with DiskCache's API (key / get_many / put_many), counting reads and writes."""

    def __init__(self) -> None:
        self.store: dict[str, Any] = {}
        self.puts = 0

    @staticmethod
    def key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return {k: self.store[k] for k in keys if k in self.store}

    def put_many(self, items: dict[str, Any]) -> None:
        self.puts += len(items)
        self.store.update(items)


@pytest.fixture(scope="module")
def tiny_lm():
    """A fresh 2-layer random llama (seed 0) per test module, so no module sees another's changes."""
    from recllm.llm.backbone import tiny_causal_lm

    return tiny_causal_lm(seed=0)


@pytest.fixture()
def dict_cache() -> DictCache:
    return DictCache()
