"""What the machine can do: CPU model and flags, AMX, threads, and the achieved matmul FLOP/s (the physical limit).

Facts only: which precision recllm runs models in is decided in :mod:`recllm.llm.precision`.

Throughput figures are only meaningful next to what the hardware can deliver; ``measure_matmul_flops`` gives the
FLOP/s a square matmul actually reaches in a given dtype with the current torch thread setting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from recllm.hardware import cpu_flags, cpu_model, has_amx  # noqa: F401 - re-exported: the facts live outside llm

T = TypeVar("T")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def available_cores() -> int:
    """Cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_info() -> dict[str, int | str]:
    """Torch intra/inter-op threads, usable cores and the 1-minute load average (other users of the CPU)."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "n/a"
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cores": available_cores(),
        "load_1min": load,
    }


def measure_matmul_flops(dtype: str = "float32", size: int = 1024, seconds: float = 1.0, device: str = "cpu") -> float:
    """Achieved FLOP/s of repeated ``size x size`` matmuls in ``dtype`` (2 * size**3 FLOPs each).

    Runs for about ``seconds`` after one warm-up product; uses the current ``torch.get_num_threads()``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if size < 1 or seconds <= 0:
        raise ValueError(f"size must be >= 1 and seconds > 0, got size={size}, seconds={seconds}")
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=_DTYPES[dtype])
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=_DTYPES[dtype])
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        torch.matmul(a, b)
        sync()
        runs, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b)
            runs += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
    return 2.0 * size**3 * runs / elapsed


def _as_raw(formula: Callable[..., int]) -> Callable[..., int]:
    """A formula from torch's FLOP registry (already taking tensors), marked so FlopCounterMode uses it as it is."""
    def counted(*args: object, **kwargs: object) -> int:
        return formula(*args, **kwargs)

    counted._get_raw = True  # type: ignore[attr-defined]
    return counted


def count_flops(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` once and count the FLOPs it executes (``torch.utils.flop_counter.FlopCounterMode``: matrix
    products, convolutions and attention, forward and backward; element-wise work is not counted), so a throughput
    can be given as a fraction of :func:`measure_matmul_flops`. The CPU's fused attention kernel, which torch's
    counter does not know, is counted like the other attention kernels (QK^T and AV)."""
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    aten = torch.ops.aten
    mapping = {}
    for cpu_op, counted_op in (("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
                               ("_scaled_dot_product_flash_attention_for_cpu_backward",
                                "_scaled_dot_product_flash_attention_backward")):
        op, formula = getattr(aten, cpu_op, None), flop_registry.get(getattr(aten, counted_op, None))
        if op is not None and formula is not None and op not in flop_registry:
            mapping[op] = _as_raw(formula)
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        result = fn()
    return result, float(counter.get_total_flops())


def peak_note(flops_per_second: float, dtype: str, device: str = "cpu", seconds: float = 1.0) -> str:
    """``flops_per_second`` as a fraction of the measured ``dtype`` matmul peak of ``device`` (the CPU at the current
    torch threads, or a GPU), in words, with the peak and the processor: what a throughput printed to a user is read
    against."""
    device = str(device)
    peak = measure_matmul_flops(dtype, seconds=seconds, device=device)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else \
        f"{cpu_model()}, {torch.get_num_threads()} thread(s)"
    return (f"{flops_per_second / 1e9:.1f} GFLOP/s, {flops_per_second / peak:.1%} of the measured {dtype} matmul "
            f"peak ({peak / 1e9:.1f} GFLOP/s on {where})")
