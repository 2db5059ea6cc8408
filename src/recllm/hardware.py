"""Facts about the CPU, without torch: model name, feature flags, AMX and native bfloat16 matmul units.

Report headers (:mod:`recllm.eval.report`) and the precision policy (:mod:`recllm.llm.precision`) both read them
here. What recllm does with them (which precision ``dtype="auto"`` means) is decided in ``recllm.llm.precision``.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

BF16_MATMUL_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU flags of native bfloat16 matmul units (AMX, AVX512-BF16)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where that is missing)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def has_amx(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU has AMX bf16 tiles (bfloat16 matmuls are then several times faster than float32)."""
    return "amx_bf16" in (cpu_flags() if flags is None else flags)


def has_bf16_matmul(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU multiplies bfloat16 natively: AMX tiles (Sapphire Rapids and later, ~3x float32) or
    AVX512-BF16 (e.g. AMD Zen 4: SmolLM2 prefill 274 vs 132 tokens/s on 1 thread)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_MATMUL_FLAGS)


def load_average() -> float:
    """The 1-minute load average (``os.getloadavg``), or NaN where the platform has none: a timing taken while
    other jobs share the CPU says so with it."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")


def this_process_machine() -> dict[str, object]:
    """``{"cpu": CPU model, "threads": torch threads}`` of this process: what a stored time is measured on."""
    import torch

    return {"cpu": cpu_model(), "threads": int(torch.get_num_threads())}
