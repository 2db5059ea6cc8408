"""recllm.models: the Recommender contract and an explicit registry of models by name."""

from recllm.models.base import Recommender
from recllm.models.content_knn import ContentKNN
from recllm.models.hstu import HSTU
from recllm.models.itemknn import ItemKNN
from recllm.models.popularity import Popularity
from recllm.models.precomputed import PrecomputedScores
from recllm.models.sasrec import SASRec

# Explicit registry: name -> Recommender class (one line per model). ContentKNN is not in it: it needs item-text
# embeddings (its contract check, with planted content, is tests/models/test_content_knn.py).
MODELS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "sasrec": SASRec,
    "hstu": HSTU,
}

__all__ = ["HSTU", "MODELS", "ContentKNN", "ItemKNN", "Popularity", "PrecomputedScores", "Recommender", "SASRec"]
