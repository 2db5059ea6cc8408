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


def test_count_flops_counts_matrix_products_and_the_cpu_attention_kernel():
    """A (64 x 32) @ (32 x 16) product is 2 x 64 x 32 x 16 FLOPs; scaled-dot-product attention on the CPU (whose
    fused kernel torch's counter does not know) counts QK^T and AV, as the counter does for the other kernels."""
    import torch

    from recllm.llm.hardware import count_flops

    a, b = torch.randn(64, 32), torch.randn(32, 16)
    product, flops = count_flops(lambda: a @ b)
    assert flops == 2 * 64 * 32 * 16 and product.shape == (64, 16)
    q = torch.randn(2, 4, 10, 8)  # batch 2, 4 heads, 10 positions, head dim 8
    _, flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True))
    assert flops == 2 * (2 * 2 * 4 * 10 * 10 * 8)
    assert count_flops(lambda: (a + 1.0).sum())[1] == 0  # element-wise work is not counted


def test_peak_note_reads_a_throughput_against_the_measured_peak(monkeypatch):
    import recllm.llm.hardware as hardware

    monkeypatch.setattr(hardware, "measure_matmul_flops", lambda dtype, seconds=1.0, device="cpu": 4e10)
    note = hardware.peak_note(1e10, "float32")
    assert note.startswith("10.0 GFLOP/s, 25.0% of the measured float32 matmul peak (40.0 GFLOP/s on ")
    assert "thread(s)" in note
