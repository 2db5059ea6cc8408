"""recllm.llm: the one place that loads and runs language models (loading, generation, scoring, embeddings)."""

from recllm.llm.backbone import (
    DEFAULT_CAUSAL_LM,
    DEFAULT_TEXT_ENCODER,
    CausalLM,
    chat_prompt,
    load_causal_lm,
    load_text_encoder,
    tiny_causal_lm,
)
from recllm.llm.hardware import cpu_model, has_amx, measure_matmul_flops, thread_info

__all__ = [
    "DEFAULT_CAUSAL_LM",
    "DEFAULT_TEXT_ENCODER",
    "CausalLM",
    "chat_prompt",
    "cpu_model",
    "has_amx",
    "load_causal_lm",
    "load_text_encoder",
    "measure_matmul_flops",
    "thread_info",
    "tiny_causal_lm",
]
