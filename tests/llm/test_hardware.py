"""Hardware probes: they answer quickly and sensibly."""

from __future__ import annotations

import pytest
import torch

from recllm.llm.hardware import cpu_flags, cpu_model, has_amx, measure_matmul_flops, thread_info
from recllm.llm.precision import has_bf16_matmul


def test_matmul_flops_is_positive_and_plausible() -> None:
    flops = measure_matmul_flops("float32", size=128, seconds=0.05)
    assert 1e7 < flops < 1e14  # between a slow phone and a large GPU


def test_matmul_flops_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dtype"):
        measure_matmul_flops("int3")
    with pytest.raises(ValueError, match="seconds"):
        measure_matmul_flops("float32", seconds=0)


def test_cpu_facts() -> None:
    assert isinstance(has_amx(), bool)
    assert has_bf16_matmul(frozenset({"avx2", "avx512_bf16"})) and has_bf16_matmul(frozenset({"amx_bf16"}))
    assert not has_bf16_matmul(frozenset({"avx2", "avx512f"})) and not has_bf16_matmul(frozenset())
    assert has_bf16_matmul() == any(f in cpu_flags() for f in ("amx_bf16", "avx512_bf16"))
    assert cpu_model()
    info = thread_info()
    assert info["torch_threads"] == torch.get_num_threads()
    assert int(info["cores"]) >= 1
