"""recllm.trsr: LLM-TRSR (arXiv 2403.13325) — block-wise LLM summaries of long, text-rich histories and a
LoRA-fine-tuned Yes/No LLM ranker scored by P(Yes).

    from recllm.data import load, leave_one_out
    from recllm.llm import load_causal_lm, load_trainable_lm
    from recllm.trsr import TRSR, TRSRConfig

    split = leave_one_out(load("ml-latest-small"))
    model = TRSR(load_causal_lm(), load_trainable_lm(), TRSRConfig()).fit(split)  # summarizer, ranker
    p_yes = model.rank(histories, candidate_item_lists)
"""

from recllm.trsr.pipeline import (TRSR, InjectionEffect, TRSRConfig, dataset_item_texts, inject, injection_effect,
                                  precomputed_score_fn, training_cases)
from recllm.trsr.prompts import INJECTION, TEMPLATE_VERSION, template_fingerprint
from recllm.trsr.ranker import LLMRanker, RankerConfig, RankQuery, scoring_lm
from recllm.trsr.segment import SegmentConfig, render_item_texts, segment_history, segment_histories
from recllm.trsr.summarize import MODES, Summaries, SummarizerConfig, summarize_histories

__all__ = [
    "INJECTION", "MODES", "TEMPLATE_VERSION", "TRSR", "InjectionEffect", "LLMRanker", "RankQuery", "RankerConfig",
    "SegmentConfig", "Summaries", "SummarizerConfig", "TRSRConfig", "dataset_item_texts", "inject",
    "injection_effect", "precomputed_score_fn", "render_item_texts", "scoring_lm", "segment_history",
    "segment_histories", "summarize_histories", "template_fingerprint", "training_cases",
]
