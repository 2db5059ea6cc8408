"""``recllm bench trsr --plan``: every unit of the benchmark, whether it is stored, and its estimated time here.

Units: the lr choice (only when the runs have too few optimizer steps for the paper's lr), each SFT run (stored when
its folder holds a finished run), each data set's part per seed (ID baselines, the scoring passes, injection and,
for the first seed, the two-stage protocol; stored in the run store), and the learning curve. Times come from a
short probe on this machine (:func:`probe_rates`): two grouped-SFT steps, one user's 21 candidates scored, a few
summaries generated; summaries already cached are not detected, so their estimate is an upper bound.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Rates", "Unit", "probe_rates", "plan_units", "format_plan"]


@dataclass(frozen=True)
class Rates:
    """Measured seconds per training group (one optimizer pass over a user's 21 candidates), per scored candidate
    and per generated summary prompt."""

    sft_group_s: float
    score_candidate_s: float
    summary_prompt_s: float
    load_average: float = float("nan")  # 1-minute load average when the probe ended


@dataclass(frozen=True)
class Unit:
    """One resumable piece of the benchmark."""

    dataset: str
    name: str
    stored: bool
    seconds: float


def probe_rates(summarizer: Any, data: Any, sizes: Any, show_progress: bool = False) -> Rates:
    """Time 2 grouped-SFT steps, scoring one user's 21 candidates and 2 summaries on this machine, with prompts of
    the benchmark's shape (real item texts and histories of ``data``, a summary of ``sizes.summary_tokens``
    tokens)."""
    import tempfile

    from recllm.bench.trsr.run import bench_trsr_config
    from recllm.llm import load_trainable_lm
    from recllm.llm.sft import sft_train
    from recllm.trsr.pipeline import dataset_item_texts
    from recllm.trsr.ranker import LLMRanker, RankQuery
    from recllm.trsr.summarize import summarize_histories

    config = bench_trsr_config("hierarchical", sizes, data.spec, 0)
    texts = dataset_item_texts(data.dataset, summarizer.tokenizer, data.spec.item_tokens, data.spec.columns)
    rng = np.random.default_rng(0)
    summary = " ".join(["likes"] * sizes.summary_tokens)

    def groups(n: int) -> tuple[list[RankQuery], list[list[str]], list[list[int]]]:
        q, c, y = [], [], []
        for _ in range(n):
            items = rng.choice(len(texts), size=24, replace=False)
            q.append(RankQuery(summary, tuple(texts[int(i)] for i in items[:3])))
            c.append([texts[int(i)] for i in items[3:]])
            y.append([1] + [0] * 20)
        return q, c, y

    trainable = load_trainable_lm(summarizer.name)
    steps = 2
    per_step = config.sft.batch_size * config.sft.grad_accum
    ranker = LLMRanker(trainable, config.ranker, sft=dataclasses.replace(config.sft, show_progress=False),
                       lora=config.lora, show_progress=False)
    q, c, y = groups(steps * per_step)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        sft_train(trainable, ranker.groups(q, c, y), dataclasses.replace(config.sft, show_progress=False),
                  config.lora, output_dir=folder, stop_after_steps=steps)
        sft_s = (time.perf_counter() - start) / (steps * per_step)
    scorer = LLMRanker(summarizer, config.ranker, fine_tune=False, show_progress=False).fit([], [], [])
    q, c, _ = groups(2)
    scorer.score(q[:1], c[:1], use_cache=False)  # warm-up
    start = time.perf_counter()
    scorer.score(q[1:], c[1:], use_cache=False)
    score_s = (time.perf_counter() - start) / len(c[1])
    hists = [np.asarray(h)[-5:] for h in data.test.histories[:2]]  # one block each: one prompt per history
    start = time.perf_counter()
    done = summarize_histories(summarizer, hists, texts, config.summarizer, cache=None, show_progress=False)
    summary_s = (time.perf_counter() - start) / max(done.prompts, 1)
    import os

    return Rates(sft_s, score_s, summary_s, os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))


def cached_rates(summarizer: Any, data: Any, sizes: Any, show_progress: bool = False, log: Any = print) -> Rates:
    """:func:`probe_rates`, measured once per machine, model and summary length (kept under the recllm cache)."""
    import json
    import os

    from recllm.utils import cache_dir, write_json_atomic

    key = f"{summarizer.fingerprint}|{sizes.summary_tokens}|{os.cpu_count()}"
    import hashlib

    path = cache_dir("trsr", "plan") / f"rates-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        log(f"[trsr] throughput probe reused from {path}")
        return Rates(**json.loads(path.read_text(encoding="utf-8")))
    log("[trsr] probing this machine (2 grouped-SFT steps, one user's candidates scored, 2 summaries) ...")
    start = time.perf_counter()
    rates = probe_rates(summarizer, data, sizes, show_progress)
    log(f"[trsr] probe took {time.perf_counter() - start:.0f} s")
    write_json_atomic(path, dataclasses.asdict(rates))
    return rates


def _summary_prompts(histories: list[np.ndarray], segment: Any) -> int:
    """Generation prompts of the hierarchical and recurrent summaries of ``histories`` (upper bound: shared or
    cached blocks are counted again)."""
    from recllm.trsr.segment import segment_history

    total = 0
    for h in histories:
        blocks = len(segment_history(h, segment))
        total += blocks + (1 if blocks > 1 else 0) + (blocks - 1)  # hierarchical blocks + merge; recurrent steps
    return total


def _sft_done(folder: Any) -> bool:
    from recllm.llm.sft import load_sft_state

    try:
        return bool(load_sft_state(folder / "sft").get("done"))
    except (FileNotFoundError, ValueError, OSError):
        return False


def plan_units(data: Any, sizes: Any, rates: Rates, lr_choice: dict | None, stored_part: dict[int, bool],
               curve_stored: bool, summarizer: Any, cache: Any = None) -> list[Unit]:
    """The units of one data set in the order the benchmark runs them.

    ``lr_choice``: the stored choice (None: not made yet, so the grid's runs are listed when the step count asks
    for them); ``stored_part``: seed -> whether its part is in the run store."""
    from recllm.bench.trsr.run import MODES, Fitter, curve_points, optimizer_steps
    from recllm.bench.trsr.scale import lr_candidates

    name, units = data.spec.name, []
    fitter = Fitter(data, sizes, summarizer, cache, None)
    base = fitter.config("hierarchical", 0)
    steps = optimizer_steps(data.train.groups, base.sft)
    grid = lr_candidates(steps) if lr_choice is None else (float(lr_choice["lr"]),)
    fitter.lr = grid[0] if len(grid) == 1 else None
    cand = 1 + 20
    valid_s = sizes.n_valid_rows * cand * rates.score_candidate_s

    def sft_seconds(groups: int) -> float:
        return groups * base.sft.epochs * rates.sft_group_s + base.sft.epochs * valid_s

    def sft_unit(label: str, config: Any, groups: int) -> Unit:
        return Unit(name, f"SFT {label} ({groups} groups, lr {config.sft.learning_rate:g})",
                    _sft_done(fitter.run_dir(label, config)), sft_seconds(groups))

    histories = list(data.valid.histories) + list(data.test.histories)
    segment = base.summarizer.segment
    from recllm.trsr.pipeline import training_cases

    cases = training_cases(data.split, data.train.users, data.train.targets_per_user, 0, data.test.users)
    units.append(Unit(name, f"summaries (<= {_summary_prompts(histories + list(cases.histories), segment)} "
                      "prompts; cached ones are reused)", False,
                      _summary_prompts(histories + list(cases.histories), segment) * rates.summary_prompt_s))
    if len(grid) > 1:
        for lr in grid:
            cfg = fitter.config("hierarchical", 0, lr=lr)
            units.append(sft_unit("hierarchical-seed0", cfg, data.train.groups))
    test_s = sizes.n_test_rows * (cand + 1) * rates.score_candidate_s  # + the injected negative
    two_stage_s = 2 * (sizes.n_fusion_rows + sizes.n_rerank_rows) * sizes.rerank_k * rates.score_candidate_s
    for position, seed in enumerate(sizes.seeds):
        part_s = 0.0
        runs = [(f"{mode}-seed{seed}", fitter.config(mode, seed)) for mode, _ in MODES]
        if sizes.mitigation_seeds is None or position < sizes.mitigation_seeds:
            runs.append((f"hardened-seed{seed}", fitter.config("hierarchical", seed, guarded=True,
                                                               inject_fraction=0.5)))
        for label, cfg in runs:
            units.append(sft_unit(label, cfg, data.train.groups))
            part_s += test_s
        if position == 0:
            part_s += test_s + two_stage_s + 2 * sizes.sasrec_seconds  # zero-shot, two-stage, LEARN
        units.append(Unit(name, f"part seed {seed} (baselines, scoring, injection"
                          + (", zero-shot, two-stage)" if position == 0 else ")"),
                          stored_part.get(seed, False), part_s + sizes.sasrec_seconds))
    for n in curve_points(sizes, data):
        if n == data.train.users:
            continue  # the headline seed-0 runs are the curve's full-size point
        size = dataclasses.replace(data.train, users=n)
        groups = len(training_cases(data.split, n, size.targets_per_user, 0, data.test.users))
        for mode in ("hierarchical", "none"):
            unit = sft_unit(f"{mode}-seed0", fitter.config(mode, 0, train=size), groups)
            units.append(dataclasses.replace(unit, name=f"curve: {unit.name}, {n} users"))
    units.append(Unit(name, "learning curve (validation scoring)", curve_stored,
                      len(curve_points(sizes, data)) * 2 * valid_s))
    return units


def format_plan(units: list[Unit], rates: Rates) -> str:
    """The plan as text: one line per unit, then the remaining time."""
    def hours(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"

    import os

    lines = [f"measured here (load average {rates.load_average:.1f} on {os.cpu_count()} CPUs while probing: a busier machine "
             f"measures slower): {rates.sft_group_s:.2f} s per training group (21 candidates), "
             f"{1 / rates.score_candidate_s:.1f} candidates/s scored, {rates.summary_prompt_s:.2f} s per summary "
             "prompt (batch of 2; the benchmark batches 32, so summaries are overestimated)"]
    left = 0.0
    for u in units:
        if not u.stored:
            left += u.seconds
        lines.append(f"{u.dataset:34s} {u.name:80s} {'stored' if u.stored else 'to run':6s} ~{hours(u.seconds)}")
    lines.append(f"estimated time left on this machine: ~{hours(left)} (SFT runs resume from checkpoints, scores and "
                 "summaries are cached, each part is stored as it finishes)")
    return "\n".join(lines)


def plan_benchmark(quick: bool = False, out: Any = None, datasets: list[str] | None = None,
                   seeds: list[int] | None = None, score_dtype: str = "auto", lr: float | None = None,
                   model_name: str | None = None, show_progress: bool = False, log: Any = print) -> int:
    """Print every unit of ``recllm bench trsr`` with these arguments, whether it is stored and its estimated
    time on this machine (from :func:`probe_rates`); runs nothing else."""
    from pathlib import Path

    from recllm.bench.reporting import REPORT_FOLDER
    from recllm.bench.runs import RunStore, data_sha256
    from recllm.bench.trsr.run import (_part_key, _unit_key, benchmark_specs, prepare, resolve_sizes)
    from recllm.data import data_files
    from recllm.llm import load_causal_lm, resolve_dtype
    from recllm.llm.precision import check_dtype

    check_dtype(score_dtype, "--score-dtype")
    sizes = resolve_sizes(quick, seeds)
    specs = benchmark_specs(datasets)
    path = Path(getattr(out, "path", out) or Path.cwd() / REPORT_FOLDER / ("trsr-quick.md" if quick else "trsr.md"))
    store = RunStore(path.with_suffix(".runs.jsonl"))
    summarizer = load_causal_lm(model_name, dtype="auto")
    faster = resolve_dtype(score_dtype, summarizer.device)
    rates = None
    units: list[Unit] = []
    for spec in specs:
        log(f"[trsr] {spec.name}: loading the split and its fixed candidates")
        data = prepare(spec, sizes, show_progress)
        sha = data_sha256(data_files([spec.name]))
        if rates is None:
            rates = cached_rates(summarizer, data, sizes, show_progress, log)
        if lr is not None:
            choice = {"lr": lr}
        else:
            choice = store.get(_unit_key("bench-trsr-lr", spec, sizes, sha, summarizer.fingerprint))
        stored_part = {}
        chosen = float(choice["lr"]) if choice else None
        for position, seed in enumerate(sizes.seeds):
            stored_part[seed] = chosen is not None and _part_key(spec, sizes, sha, seed, position, chosen, faster,
                                                                 summarizer.fingerprint) in store
        curve = chosen is not None and _unit_key("bench-trsr-curve", spec, sizes, sha, summarizer.fingerprint,
                                                 lr=chosen) in store
        units += plan_units(data, sizes, rates, choice, stored_part, curve, summarizer)
    log(format_plan(units, rates))
    return 0
