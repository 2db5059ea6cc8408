"""recllm.learn: LEARN (arXiv 2405.03988): frozen-LLM item content embeddings, causal-transformer twin towers
trained contrastively, and nearest-neighbour retrieval.

    from recllm.learn import LEARN, save, load
    model = LEARN(item_tower="shared").fit(split)        # content embeddings from dataset.item_texts()
    save(model, "runs/learn-ml100k", split.dataset)
    retriever = load("runs/learn-ml100k")
    retriever.recommend("196", k=10); retriever.similar_items("242", k=10)
"""

from recllm.learn.artifact import LEARNRetriever, load, save
from recllm.learn.encoder import ContentConfig, Whitener, item_content_embeddings
from recllm.learn.index import ExactIndex, FaissIndex, build_index
from recllm.learn.train import LEARN, LEARNConfig

__all__ = [
    "LEARN", "LEARNConfig", "ContentConfig", "Whitener", "item_content_embeddings", "ExactIndex", "FaissIndex",
    "build_index", "LEARNRetriever", "save", "load",
]
