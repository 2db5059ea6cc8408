"""recllm.trsr: LLM-TRSR (arXiv 2403.13325) — block-wise LLM summaries of long, text-rich histories and a
LoRA-fine-tuned Yes/No LLM ranker scored by P(Yes).

    from recllm.data import load, leave_one_out
    from recllm.llm import load_causal_lm, load_trainable_lm
    from recllm.trsr import TRSR, TRSRConfig

    split = leave_one_out(load("ml-latest-small"))
    model = TRSR(load_causal_lm(), load_trainable_lm(), TRSRConfig()).fit(split)  # summarizer, ranker
    p_yes = model.rank(histories, candidate_item_lists)
"""

from recllm.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("TRSR", "InjectionEffect", "TRSRConfig", "dataset_item_texts", "inject", "injection_effect",
                     "precomputed_score_fn", "training_cases"), "recllm.trsr.pipeline"),
    **dict.fromkeys(("INJECTION", "TEMPLATE_VERSION", "template_fingerprint"), "recllm.trsr.prompts"),
    **dict.fromkeys(("LLMRanker", "RankerConfig", "RankQuery", "scoring_lm"), "recllm.trsr.ranker"),
    **dict.fromkeys(("SegmentConfig", "render_item_texts", "segment_history", "segment_histories"),
                    "recllm.trsr.segment"),
    **dict.fromkeys(("MODES", "Summaries", "SummarizerConfig", "summarize_histories"), "recllm.trsr.summarize"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
