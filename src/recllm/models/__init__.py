"""recllm.models: the Recommender contract and an explicit registry of models by name."""

from recllm.models.base import Recommender
from recllm.models.hstu import HSTU
from recllm.models.itemknn import ItemKNN
from recllm.models.popularity import Popularity
from recllm.models.precomputed import PrecomputedScores
from recllm.models.sasrec import SASRec

# Explicit registry: name -> Recommender class (one line per model).
MODELS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "sasrec": SASRec,
    "hstu": HSTU,
}

__all__ = ["HSTU", "MODELS", "ItemKNN", "Popularity", "PrecomputedScores", "Recommender", "SASRec"]
