"""`recllm demo`: the main job on real data with the bundled models, one short section per system, cached.

The demo sizes itself by the machine it runs on: a short probe times the bundled LLM's forward pass (tokens/s, in
the precision ``dtype="auto"`` picks, under the machine's current load) and each LLM step gets the largest of its
sizes whose estimated time fits its budget below (``full=True`` / ``--full``: the largest, whatever it costs).
Every section prints the size it runs at and why.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------- the budget
# The demo's time budget, in this one place: seconds each LLM step may take on the machine it runs on. With the rest
# (start-up and probe ~20 s, baselines ~10 s, LEARN's two small trainings, serving ~20 s) a demo on a fresh cache
# stays within ~7 minutes, so `make demo` after its ~2.5-minute install ends within 10 on an idle 2-core AVX2 CPU.
BUDGET_SECONDS = {"impute": 120.0, "learn": 60.0, "trsr": 120.0}
# Each step's sizes, the full one first: (LoRA fine-tuning rows, one epoch; share of film cells masked) for the imputer;
# test users for LLM-TRSR; the text encoder of LEARN's item content (SmolLM2-135M, else the bundled all-MiniLM-L6-v2).
IMPUTE_SIZES = ((128, 0.2), (64, 0.1), (32, 0.05), (32, 0.03), (16, 0.02))
TRSR_USERS = (16, 12, 8, 6, 4)
TEXT_ENCODERS = ("smollm2", "minilm")
IMPUTE_COLUMNS = 2  # masked film columns (year, genres): cells = films x columns x share
# What one unit of each step costs, in SmolLM2 forward tokens (seconds x the probe's tokens/s), measured on the 2-core
# AVX2 EPYC in float32 with the probe run before and after the step (load average 13-21, probe 22-37 tokens/s):
# an imputer fine-tuning example (75: 32 whole-row examples in 85 s, model loading included; 118 with the per-cell
# examples before), a masked cell filled (41: year and genres generated, 168 cells in 243 s), an LLM-TRSR test user
# (1,413: 4 users in 180 s, a hierarchical summary, one shared-prefix pass over 21 candidates and the injection
# probe), a film-text token embedded by SmolLM2 (the probe's own operation, 1.1 for padding) or by all-MiniLM-L6-v2
# (0.06: 30,433 SmolLM2 tokens of text in 85 s at ~22 tokens/s). A fresh demo at probe 23 tokens/s (load ~17) ran
# imputation in 239 s (estimated ~4 min), MiniLM in 70 s (~79 s), LLM-TRSR in 166 s (~4 min).
WORK_TOKENS = {"impute_example": 80.0, "impute_cell": 45.0, "trsr_user": 1400.0, "embed_token": 1.1,
               "minilm_token": 0.06}
PROBE_TEXTS = 8  # catalogue film texts the probe embeds (~150 tokens: ~2 s on the idle 2-core EPYC)
PROBE_VERSION = 2  # bump when the probe's operation changes, so cached probes are measured again


@dataclass(frozen=True)
class Probe:
    """The machine as the demo measured it: the bundled LLM's forward speed and the size of the demo's data."""

    tokens_per_s: float  # SmolLM2 forward (prefill) tokens per second, in ``dtype``
    dtype: str
    films: int  # MovieLens-100K films (the imputation and LEARN catalogue)
    catalogue_tokens: int  # SmolLM2 tokens of their texts (what LEARN's SmolLM2 encoder reads)
    seconds: float = 0.0  # how long the timed pass took
    compute: str = ""  # the timed pass's FLOP/s against the CPU's measured matmul peak (llm.hardware.peak_note)

    def estimate(self, work_tokens: float) -> float:
        """Seconds ``work_tokens`` SmolLM2-token equivalents take at the measured speed."""
        return work_tokens / max(self.tokens_per_s, 1e-9)


@dataclass(frozen=True)
class Choice:
    """One section's size: the keyword arguments its ``demo_section`` gets, and the one-line reason."""

    kwargs: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class DemoPlan:
    """Every section's choice (sections without one run at their only size)."""

    choices: dict[str, Choice] = field(default_factory=dict)
    probe: Probe | None = None

    def kwargs(self, section: str) -> dict[str, Any]:
        return dict(self.choices[section].kwargs) if section in self.choices else {}


def _minutes(seconds: float) -> str:
    return f"~{seconds / 60:.0f} min" if seconds >= 90 else f"~{seconds:.0f} s"


def _fit(sizes: tuple[Any, ...], cost: Callable[[Any], float], budget: float) -> Any:
    """The first (largest) of ``sizes`` whose estimated cost fits ``budget``; the smallest if none does."""
    return next((size for size in sizes if cost(size) <= budget), sizes[-1])


def plan_demo(probe: Probe | None, full: bool = False) -> DemoPlan:
    """Size each LLM step: the largest size that fits its budget at the probe's speed (``full``/no probe: largest)."""
    examples, rate = IMPUTE_SIZES[0]
    users, encoder = TRSR_USERS[0], TEXT_ENCODERS[0]
    if full or probe is None:
        why = "--full" if full else "no probe"
        return DemoPlan({
            "impute": Choice({"examples": examples, "rate": rate}, f"full size ({why})"),
            "learn": Choice({"encoder": encoder}, f"item text encoded by SmolLM2-135M ({why})"),
            "serve": Choice({"encoder": encoder}, "the LEARN section's model"),
            "trsr": Choice({"n_users": users}, f"{users} test users ({why})"),
        }, probe)
    speed = f"at the measured {probe.tokens_per_s:.0f} SmolLM2 tokens/s ({probe.dtype}) on this CPU"

    def impute_cost(size: tuple[int, float]) -> float:
        cells = probe.films * IMPUTE_COLUMNS * size[1]
        return probe.estimate(size[0] * WORK_TOKENS["impute_example"] + cells * WORK_TOKENS["impute_cell"])

    def trsr_cost(n: int) -> float:
        return probe.estimate(n * WORK_TOKENS["trsr_user"])

    smollm2 = probe.estimate(probe.catalogue_tokens * WORK_TOKENS["embed_token"])
    minilm = probe.estimate(probe.catalogue_tokens * WORK_TOKENS["minilm_token"])
    examples, rate = _fit(IMPUTE_SIZES, impute_cost, BUDGET_SECONDS["impute"])
    users = _fit(TRSR_USERS, trsr_cost, BUDGET_SECONDS["trsr"])
    encoder = TEXT_ENCODERS[0] if smollm2 <= BUDGET_SECONDS["learn"] else TEXT_ENCODERS[1]

    def sized(chosen: str, full: str, full_cost: float, cost: float) -> str:
        if cost >= full_cost:
            return f"{chosen}, the full size ({_minutes(cost)} {speed})"
        return (f"{chosen}, reduced (the full {full} would take {_minutes(full_cost)} {speed}; this size "
                f"{_minutes(cost)}; --full for the full size)")

    def impute_size(size: tuple[int, float]) -> str:
        return f"{size[0]} fine-tuning rows (1 epoch), {size[1]:.0%} of the film cells masked"

    return DemoPlan({
        "impute": Choice({"examples": examples, "rate": rate},
                         sized(impute_size((examples, rate)), impute_size(IMPUTE_SIZES[0]),
                               impute_cost(IMPUTE_SIZES[0]), impute_cost((examples, rate)))),
        "learn": Choice({"encoder": encoder},
                        f"item text encoded by SmolLM2-135M ({_minutes(smollm2)} {speed})" if encoder == "smollm2" else
                        f"item text encoded by all-MiniLM-L6-v2 ({_minutes(minilm)}; SmolLM2-135M would take "
                        f"{_minutes(smollm2)} {speed}; --full to use it)"),
        "serve": Choice({"encoder": encoder}, "the LEARN section's model"),
        "trsr": Choice({"n_users": users}, sized(f"{users} test users", f"{TRSR_USERS[0]} users",
                                                 trsr_cost(TRSR_USERS[0]), trsr_cost(users))),
    }, probe)


def measure_probe(show_progress: bool = True) -> Probe:
    """Time one SmolLM2 forward pass over a few MovieLens-100K film texts (after a warm-up pass), in the precision
    "auto" picks, count its FLOPs in a second pass against the CPU's measured matmul peak, and count the tokens of
    the whole film catalogue (~5 s in all on the 2-core EPYC)."""
    from recllm.data import load
    from recllm.learn.encoder import catalogue_texts
    from recllm.llm import embed_texts, load_causal_lm
    from recllm.llm.hardware import count_flops, peak_note

    texts = catalogue_texts(load("ml-100k", show_progress=show_progress))
    lm = load_causal_lm(dtype="auto")
    tokens = [len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False).input_ids]
    step = max(1, len(texts) // PROBE_TEXTS)
    sample = list(dict.fromkeys(texts[::step]))[:PROBE_TEXTS]
    embed_texts(lm, sample[:1], cache=None, show_progress=False)  # warm-up: kernels, allocations, thread pool

    def timed_pass() -> None:
        embed_texts(lm, sample, batch_size=len(sample), cache=None, show_progress=False)

    start = time.perf_counter()
    timed_pass()
    seconds = time.perf_counter() - start
    flops = count_flops(timed_pass)[1]  # the same pass again, counted (the counter slows what it counts)
    timed = sum(len(ids) for ids in lm.tokenizer(sample, add_special_tokens=False).input_ids)
    return Probe(tokens_per_s=timed / seconds, dtype=lm.dtype, films=len(texts), catalogue_tokens=int(sum(tokens)),
                 seconds=seconds, compute=peak_note(flops / seconds, lm.dtype, lm.device))


def _probe_path() -> Path:
    """Where this machine's probe is kept: one file per CPU model, flags, torch version and probe version."""
    import torch

    from recllm.llm import cpu_model
    from recllm.llm.precision import cpu_flags
    from recllm.utils import cache_dir

    parts = {"cpu": cpu_model(), "flags": sorted(cpu_flags()), "torch": torch.__version__, "version": PROBE_VERSION,
             "texts": PROBE_TEXTS}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir("demo") / f"probe-{key}.json"


def machine_probe(show_progress: bool = True) -> tuple[Probe, str]:
    """This machine's probe and where it came from: measured by the first demo on the machine, then read from the
    recllm cache (written atomically), so later runs get the same sizes and find their results cached."""
    from recllm.utils import write_json_atomic

    path = _probe_path()
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        probe = Probe(**{f.name: stored[f.name] for f in fields(Probe)})
        return probe, (f"measured {stored['measured']}, load average {stored['load']}; kept in {path}: delete it to "
                       "measure again")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if show_progress:
        print("timing the bundled LLM on this CPU to size the demo ...", flush=True)
    probe = measure_probe(show_progress)
    load = _load()
    write_json_atomic(path, {**asdict(probe), "measured": time.strftime("%Y-%m-%d %H:%M"), "load": load})
    return probe, f"measured now, load average {load}; kept in {path}"


def _baselines_section(seed: int, show_progress: bool) -> None:
    from recllm.data import leave_one_out, load
    from recllm.eval.baselines import DEMO_GRID, run_baselines
    from recllm.eval.report import format_table

    start = time.perf_counter()
    dataset = load("ml-100k", show_progress=show_progress)
    split = leave_one_out(dataset)
    results = run_baselines(split, grid=DEMO_GRID, ks=(10,), seed=seed, show_progress=show_progress)
    print(f"MovieLens-100K: {len(dataset.interactions):,} ratings, {dataset.n_users} users, {dataset.n_items} items; "
          f"chronological leave-one-out, {results.n_test_users} test users, full-catalogue ranking "
          "(item-kNN tuned on validation)")
    print(format_table(results.table_rows(), ["model", "params", "hr@10", "ndcg@10"]))
    print(f"(95% bootstrap CIs over users; {time.perf_counter() - start:.1f} s)")


# Explicit registry, in the order the demo runs them: name -> (title, section). A system's section is the
# ``demo_section(seed=..., show_progress=..., **plan.kwargs(name))`` of its package's ``demo`` module, imported only
# when it runs.
SECTIONS: dict[str, tuple[str, Callable[[int, bool], None] | str]] = {
    "baselines": ("Baselines: popularity and item-kNN on MovieLens-100K", _baselines_section),
    "impute": ("LLM imputation (arXiv 2407.10078): masked film year and genres on MovieLens-100K",
               "recllm.impute.demo"),
    "learn": ("LEARN (arXiv 2405.03988): cold-start retrieval with frozen-LLM item embeddings", "recllm.learn.demo"),
    "trsr": ("LLM-TRSR (arXiv 2403.13325): summaries and P(Yes) ranking on Amazon magazines", "recllm.trsr.demo"),
    "serve": ("recllm serve: LEARN behind the HTTP service on a loopback port; a new film recommendable at once",
              "recllm.serve.demo"),
}
SIZED = ("impute", "learn", "trsr", "serve")  # the sections whose size the plan sets


def run_demo(seed: int = 0, show_progress: bool = True, sections: list[str] | None = None, full: bool = False) -> int:
    """Run the chosen demo sections (default: all) in turn, sized by :func:`plan_demo`, printing each one's table
    and time. ``full``: every section at its full size, however long that takes on this machine."""
    chosen = list(sections or SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown demo section(s) {unknown}; choose from {list(SECTIONS)}")
    # Idle OpenMP threads sleep instead of spinning (read when torch loads, so only before its first import): with
    # another process on a core, a spinning 2-thread matmul stalls on the descheduled thread. Measured on the 2-core
    # EPYC with other jobs running (load ~4): the LLM-TRSR section took 868 s spinning, 208 s sleeping.
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from recllm.llm.precision import describe_precision

    print(f"precision: {describe_precision()} (dtype 'auto'; the demo's models run in it)", flush=True)
    probe = None
    if not full and any(name in SIZED for name in chosen):
        probe, origin = machine_probe(show_progress)
        print(f"probe: SmolLM2-135M reads {probe.tokens_per_s:.0f} tokens/s in {probe.dtype} on this CPU"
              + (f" ({probe.compute})" if probe.compute else "") + f" ({origin}); "
              "each LLM step is sized to its time budget (--full: full sizes)", flush=True)
    plan = plan_demo(probe, full=full)
    for name in chosen:
        title, section = SECTIONS[name]
        start = time.perf_counter()
        print(f"\n== {title} ==", flush=True)
        if name in plan.choices:
            print(f"size: {plan.choices[name].reason}", flush=True)
        if isinstance(section, str):
            importlib.import_module(section).demo_section(seed=seed, show_progress=show_progress, **plan.kwargs(name))
        else:
            section(seed, show_progress)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    return 0


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"
