"""Explicit registry of imputers by name (no import magic): ``IMPUTERS[name](**kwargs)``."""

from __future__ import annotations

from typing import Any

from recllm.impute.base import BaseImputer
from recllm.impute.classic import DeletionImputer, KNNTableImputer, MeanModeImputer, MICEImputer, ZeroImputer
from recllm.impute.llm import LLMImputer
from recllm.impute.names import IMPUTER_NAMES
from recllm.impute.peers import GReaTImputer, MiceForestImputer

__all__ = ["IMPUTERS", "IMPUTER_NAMES", "make_imputer"]

IMPUTERS: dict[str, type[BaseImputer]] = {
    "deletion": DeletionImputer,
    "zero": ZeroImputer,
    "mean": MeanModeImputer,
    "knn": KNNTableImputer,
    "mice": MICEImputer,
    "llm": LLMImputer,
    "miceforest": MiceForestImputer,  # peers: the optional `peers` extra (recllm.impute.peers)
    "great": GReaTImputer,
}


def make_imputer(name: str, **kwargs: Any) -> BaseImputer:
    """An imputer by registry name; an unknown name gets an error listing the known ones."""
    try:
        cls = IMPUTERS[name]
    except KeyError:
        raise ValueError(f"unknown imputer {name!r}; choose one of {sorted(IMPUTERS)}") from None
    return cls(**kwargs)
