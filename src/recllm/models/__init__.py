"""recllm.models: the Recommender contract and an explicit registry of models by name."""

from recllm.models.base import Recommender
from recllm.models.hstu import HSTU
from recllm.models.sasrec import SASRec

# Explicit registry: name -> Recommender class (one line per model; LEARN's baselines first, others merge in).
MODELS: dict[str, type[Recommender]] = {
    "sasrec": SASRec,
    "hstu": HSTU,
}

__all__ = ["MODELS", "Recommender", "SASRec", "HSTU"]
