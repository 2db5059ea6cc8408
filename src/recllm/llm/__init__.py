"""recllm.llm: the one place that loads and runs language models (loading, generation, scoring, embeddings)."""

from recllm.llm.backbone import (
    DEFAULT_CAUSAL_LM,
    DEFAULT_TEXT_ENCODER,
    CausalLM,
    chat_prompt,
    load_causal_lm,
    load_text_encoder,
    load_trainable_lm,
    ranker_base,
    tiny_causal_lm,
    trainable_copy,
)
from recllm.llm.cache import DiskCache
from recllm.llm.embed import embed_texts
from recllm.llm.generate import generate
from recllm.llm.hardware import cpu_model, has_amx, measure_matmul_flops, thread_info
from recllm.llm.precision import (
    REPRODUCIBLE_DTYPE,
    TRAINING_DTYPE,
    describe_precision,
    describe_training_precision,
    resolve_dtype,
)
from recllm.llm.scoring import (
    next_token_logprobs,
    next_token_logprobs_many,
    score_continuations,
    score_continuations_many,
    yes_probability,
)
from recllm.llm.sft import LoRAConfig, SFTConfig, load_adapter, sft_train

__all__ = [
    "DEFAULT_CAUSAL_LM",
    "DEFAULT_TEXT_ENCODER",
    "CausalLM",
    "DiskCache",
    "LoRAConfig",
    "REPRODUCIBLE_DTYPE",
    "SFTConfig",
    "TRAINING_DTYPE",
    "chat_prompt",
    "cpu_model",
    "describe_precision",
    "describe_training_precision",
    "embed_texts",
    "generate",
    "has_amx",
    "load_adapter",
    "load_causal_lm",
    "load_text_encoder",
    "load_trainable_lm",
    "measure_matmul_flops",
    "next_token_logprobs",
    "resolve_dtype",
    "next_token_logprobs_many",
    "score_continuations",
    "score_continuations_many",
    "sft_train",
    "ranker_base",
    "thread_info",
    "tiny_causal_lm",
    "trainable_copy",
    "yes_probability",
]
