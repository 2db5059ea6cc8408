"""recllm.learn: LEARN (arXiv 2405.03988): frozen-LLM item content embeddings, causal-transformer twin towers
trained contrastively, and nearest-neighbour retrieval.

    from recllm.learn import LEARN, save, load
    model = LEARN(item_tower="shared").fit(split)        # content embeddings from dataset.item_texts()
    save(model, "runs/learn-ml100k", split.dataset)
    retriever = load("runs/learn-ml100k")
    retriever.recommend("196", k=10); retriever.similar_items("242", k=10)
"""

from recllm.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("LEARNRetriever", "load", "save"), "recllm.learn.artifact"),
    **dict.fromkeys(("ContentConfig", "Whitener", "item_content_embeddings"), "recllm.learn.encoder"),
    **dict.fromkeys(("ExactIndex", "FaissIndex", "build_index"), "recllm.learn.index"),
    **dict.fromkeys(("LEARN", "LEARNConfig"), "recllm.learn.train"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
