"""The one precision policy of recllm: what ``dtype="auto"`` means on this machine, and why.

Every entry point that runs a model (loading, generation, scoring, embedding, SFT autocast, the demo, the
benchmarks, the command line) takes ``dtype="auto"`` by default and resolves it here:

* CUDA: bfloat16 where ``torch.cuda.is_bf16_supported()``, else float32;
* CPU: bfloat16 only when the CPU multiplies bfloat16 natively (AMX or AVX512-BF16 flags) *and* a short matmul probe
  (run once per machine, cached on disk) finds it clearly faster than float32; float32 otherwise. Without native
  support bfloat16 is emulated: ~25x slower than float32 on an AVX2-only EPYC;
* any other device: float32.

Explicit names ("float32", "bfloat16", "float16") are honoured; an explicit bfloat16 on a CPU without native support
warns once per process with the slowdown the probe measured. Modules outside ``recllm.llm`` never name a precision:
they pass ``"auto"`` (or the user's choice) through, and use :data:`TRAINING_DTYPE` / :data:`REPRODUCIBLE_DTYPE`
for the two places where the purpose, not the machine, decides.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass

import torch

from recllm import hardware as cpu_facts
from recllm.hardware import BF16_MATMUL_FLAGS  # noqa: F401 - re-exported
from recllm.llm import hardware
from recllm.utils import cache_dir, resolve_device, write_json_atomic

__all__ = ["CHOICES", "TRAINING_DTYPE", "REPRODUCIBLE_DTYPE", "Precision", "Bf16Probe", "check_dtype", "torch_dtype",
           "cpu_flags", "has_bf16_matmul", "bf16_probe", "choose_precision", "resolve_dtype", "describe_precision",
           "describe_training_precision", "use_bf16_autocast"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CHOICES = ("auto", *DTYPES)
TRAINING_DTYPE = "float32"  # master weights of fine-tuning (LoRA); the speed comes from bfloat16 autocast, if any
REPRODUCIBLE_DTYPE = "float32"  # the precision whose outputs are the same on every machine (stored benchmark inputs)
PROBE_SIZE = 256  # square matmul side: ~0.05 s per product where bfloat16 is emulated, far less where it is native
PROBE_SECONDS = 0.2  # time budget of the timed rounds, after one warm-up product per dtype
MIN_SPEEDUP = 1.1  # bfloat16 must beat float32 by this factor, so timing noise does not decide
_PROBE_VERSION = 1

_probes: dict[str, Bf16Probe] = {}  # in-process memo of the disk cache, by probe key
_warned = False  # the explicit-bfloat16-on-an-emulating-CPU warning is given once per process


def check_dtype(dtype: object, where: str = "dtype") -> str:
    """``dtype`` if it is one of :data:`CHOICES`, else a ValueError naming ``where`` and listing the choices."""
    if not isinstance(dtype, str) or dtype not in CHOICES:
        from recllm.errors import UserInputError

        raise UserInputError(f"unknown precision {dtype!r}", where,
                             f"choose one of {', '.join(CHOICES)} ('auto': the machine's, as `recllm llm check` shows)")
    return dtype


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a resolved precision name ("float32", "bfloat16", "float16")."""
    if name not in DTYPES:
        raise ValueError(f"no torch dtype for {name!r}; resolve 'auto' first (resolve_dtype)")
    return DTYPES[name]


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (tests fake them by replacing this function)."""
    return hardware.cpu_flags()


def has_bf16_matmul(flags: frozenset[str] | None = None) -> bool:
    """:func:`recllm.hardware.has_bf16_matmul` of this module's :func:`cpu_flags` (which tests may replace)."""
    return cpu_facts.has_bf16_matmul(cpu_flags() if flags is None else flags)


def _simd(flags: frozenset[str]) -> str:
    """The widest vector unit the flags show, for reasons ("AMX", "AVX512-BF16", "AVX2 only", ...)."""
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    if "avx512f" in flags:
        return "AVX-512 without BF16"
    if "avx2" in flags:
        return "AVX2 only"
    return "no AVX2" if flags else "CPU flags unknown"


# ---------------------------------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class Bf16Probe:
    """Seconds of one ``size x size`` matmul in float32 and in bfloat16 on this CPU (best of a few runs on
    ``threads`` threads)."""

    size: int
    float32_s: float
    bfloat16_s: float
    threads: int

    @property
    def speedup(self) -> float:
        """How many times faster bfloat16 is than float32 (below 1: slower)."""
        return self.float32_s / self.bfloat16_s if self.bfloat16_s > 0 else float("inf")


def _measure(size: int = PROBE_SIZE, budget: float = PROBE_SECONDS) -> Bf16Probe:
    """Time float32 and bfloat16 ``size``-square matmuls now on one thread (with several, a thread another process
    delays stalls the product), alternating the two so both see the same load, and keep each one's best run
    (well under a second in all)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = _best_runs(size, budget)
    finally:
        torch.set_num_threads(threads)
    return Bf16Probe(size=size, float32_s=best[torch.float32], bfloat16_s=best[torch.bfloat16], threads=1)


def _best_runs(size: int, budget: float) -> dict[torch.dtype, float]:
    gen = torch.Generator().manual_seed(0)
    pairs = {dtype: (torch.randn(size, size, generator=gen).to(dtype), torch.randn(size, size, generator=gen).to(dtype))
             for dtype in (torch.float32, torch.bfloat16)}
    best = {dtype: float("inf") for dtype in pairs}
    with torch.no_grad():
        for a, b in pairs.values():
            torch.matmul(a, b)  # warm-up: kernel choice, allocation, thread pool
        began, rounds = time.perf_counter(), 0
        while rounds < 3 or (time.perf_counter() - began < budget and rounds < 50):
            for dtype, (a, b) in pairs.items():
                start = time.perf_counter()
                torch.matmul(a, b)
                best[dtype] = min(best[dtype], time.perf_counter() - start)
            rounds += 1
    return best


def _probe_key() -> tuple[str, dict[str, object]]:
    parts = {"cpu": hardware.cpu_model(), "flags": sorted(cpu_flags()), "torch": torch.__version__,
             "size": PROBE_SIZE, "version": _PROBE_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16], parts


def bf16_probe() -> Bf16Probe:
    """The bfloat16-vs-float32 matmul probe of this CPU: measured once per machine (CPU model, flags and torch
    version), then read from ``<recllm cache>/hardware`` (written atomically) and memoised in the process."""
    key, parts = _probe_key()
    if key in _probes:
        return _probes[key]
    path = cache_dir("hardware") / f"bf16-probe-{key}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        probe = Bf16Probe(**{k: stored[k] for k in ("size", "float32_s", "bfloat16_s", "threads")})
    except (OSError, ValueError, KeyError, TypeError):
        probe = _measure()
        facts = {k: v for k, v in parts.items() if k != "flags"} | {"simd": _simd(cpu_flags())}
        write_json_atomic(path, {**facts, **asdict(probe), "speedup": probe.speedup,
                                 "measured": time.strftime("%Y-%m-%d %H:%M:%S")})
    _probes[key] = probe
    return probe


# ---------------------------------------------------------------------------------------------- the policy
@dataclass(frozen=True)
class Precision:
    """A resolved precision and the one-line reason it was chosen."""

    dtype: str
    reason: str
    slowdown: float | None = None  # an explicit bfloat16 on a CPU that emulates it: how many times slower

    def __str__(self) -> str:
        return f"{self.dtype}: {self.reason}"


def _cpu_auto() -> Precision:
    flags = cpu_flags()
    simd = _simd(flags)
    if not has_bf16_matmul(flags):
        return Precision("float32", f"CPU has no native bf16 matmul ({simd})")
    probe = bf16_probe()
    if probe.speedup >= MIN_SPEEDUP:
        return Precision("bfloat16", f"{simd}, probe {probe.speedup:.1f}x faster than float32")
    return Precision("float32", f"{simd}, but the probe found bf16 matmul only {probe.speedup:.2f}x float32")


def _cuda_bf16() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):  # no usable CUDA
        return False


def choose_precision(dtype: str = "auto", device: str = "auto") -> Precision:
    """Resolve ``dtype`` for ``device`` (see the module docstring) with the reason for the choice."""
    check_dtype(dtype)
    device = resolve_device(device)
    if dtype != "auto":
        if dtype == "bfloat16" and device.startswith("cpu") and not has_bf16_matmul():
            slowdown = 1.0 / bf16_probe().speedup
            return Precision(dtype, f"set explicitly, but emulated on this CPU ({_simd(cpu_flags())}): the probe "
                                    f"measured bf16 matmul {slowdown:.0f}x slower than float32", slowdown)
        return Precision(dtype, "set explicitly")
    if device.startswith("cuda"):
        if _cuda_bf16():
            return Precision("bfloat16", "CUDA device supports bf16")
        return Precision("float32", "CUDA device without bf16 support")
    if device.startswith("cpu"):
        return _cpu_auto()
    return Precision("float32", f"no bf16 policy for device {device!r}")


def resolve_dtype(dtype: str = "auto", device: str = "auto") -> str:
    """The precision name ``dtype`` stands for on ``device``; an explicit bfloat16 on a CPU that emulates it warns
    (once per process) with the slowdown the probe measured."""
    global _warned
    chosen = choose_precision(dtype, device)
    if chosen.slowdown is not None and not _warned:
        _warned = True
        warnings.warn(f"dtype='bfloat16' is emulated on this CPU ({_simd(cpu_flags())}, no native bf16 matmul): the "
                      f"probe measured bf16 matmul {chosen.slowdown:.0f}x slower than float32; use dtype='auto' "
                      "(float32 here)", stacklevel=2)
    return chosen.dtype


def describe_precision(dtype: str = "auto", device: str = "auto") -> str:
    """One line saying which precision ``dtype`` gives on ``device`` and why, e.g.
    "float32: CPU has no native bf16 matmul (AVX2 only)" or "bfloat16: AMX, probe 2.9x faster than float32"."""
    return str(choose_precision(dtype, device))


def use_bf16_autocast(flag: bool | str, device: str) -> bool:
    """Whether fine-tuning runs under bfloat16 autocast: ``"auto"`` follows :func:`resolve_dtype`; True asks for it
    (warning once where the CPU emulates bfloat16); False keeps float32."""
    if flag not in (True, False, "auto"):
        raise ValueError(f"bf16 must be True, False or 'auto', got {flag!r}")
    if flag is False:
        return False
    return resolve_dtype("auto" if flag == "auto" else "bfloat16", device) == "bfloat16"


def describe_training_precision(bf16: bool | str = "auto", device: str = "auto") -> str:
    """One line on how fine-tuning runs on ``device`` (``bf16`` as in ``SFTConfig``), e.g. "float32 master weights,
    no autocast (CPU has no native bf16 matmul (AVX2 only))"."""
    chosen = choose_precision("auto" if bf16 == "auto" else ("bfloat16" if bf16 else "float32"), device)
    how = "bfloat16 autocast" if use_bf16_autocast(bf16, device) else "no autocast"
    return f"{TRAINING_DTYPE} master weights, {how} ({chosen.reason})"
