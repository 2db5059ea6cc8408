"""Constants and builders the serve tests share (a module of its own: `from conftest import` is ambiguous when
several test folders with a conftest are collected in one run)."""

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def tiny_llm_parts(block_size: int = 3):
    """``(parts, holder)``: a ``make_app(parts=...)`` builder adding the TRSR reranker and recurrent summaries over
    the tiny random LM; ``holder`` receives ``lm``, ``config``, ``text``, ``state`` and ``summaries``."""
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.serve.rerank import LLMReranker, SummaryKeeper
    from recllm.trsr.pipeline import TRSRConfig
    from recllm.trsr.ranker import RankerConfig
    from recllm.trsr.segment import SegmentConfig, render_item_texts
    from recllm.trsr.summarize import SummarizerConfig

    lm = tiny_causal_lm()
    segment = SegmentConfig(block_size=block_size, max_blocks=5, item_tokens=12)
    config = TRSRConfig(summarizer=SummarizerConfig(mode="hierarchical", max_new_tokens=4, segment=segment),
                        ranker=RankerConfig(score_dtype="float32"), fine_tune=False)
    holder = {"lm": lm, "config": config}

    def text(position):
        return render_item_texts([holder["state"].text(position)], lm.tokenizer, 12)[0]

    def parts(state, store):
        holder["state"] = state
        holder["summaries"] = SummaryKeeper(lm, config.summarizer, store, state.history, text)
        return {"summaries": holder["summaries"], "reranker": LLMReranker(lm, config, holder["summaries"], text)}

    holder["text"] = text
    return parts, holder
