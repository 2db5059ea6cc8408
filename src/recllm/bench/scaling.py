"""``recllm bench scaling`` -> docs/results/scaling.md: one machine's throughput at 1 and 2 workers, and a projection.

Measured here: the LLM batch jobs (item embedding, candidate scoring, generation) in one process and on a Ray actor
pool of 1 and 2 workers, the trainers (SASRec, LEARN's towers, LoRA SFT) under ``torchrun`` with 1 and 2
processes, and what starting Ray costs. Every worker and process runs one torch thread (so 2 workers use the 2
cores a single 2-thread process would) and float32 (identical results on every engine). From the measured
per-worker throughput and the 2-worker scaling efficiency, a cost model projects the LEARN paper's scale (a
catalogue of a few million items, tens of millions of interactions) onto N CPU workers: a projection, not a
measurement, and labelled as one in the report.

The trainers run as ``python -m torch.distributed.run --nproc-per-node N -m recllm.bench.scaling trainer ...``
(this module's ``__main__``): each rank trains, rank 0 writes its timing as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recllm.utils import set_threads

__all__ = ["Sizes", "SIZES", "PaperScale", "matmul_peaks", "project", "run_scaling", "register_cli"]

NAME = "scaling"
TRAINERS = ("sasrec", "learn", "sft")
JOBS = ("embedding", "scoring", "generation")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does (``model``: ``"smollm2"``, the bundled model, or ``"tiny"``)."""

    model: str
    texts: int  # items embedded
    groups: int  # users scored
    candidates: int  # candidates per user (LLM-TRSR: 1 positive + 20 negatives)
    prompts: int  # prompts generated
    new_tokens: int
    chunk: int  # prompts per generate call (one pool row)
    users: int  # synthetic users of the trainers' data set
    items: int
    history: int  # mean training items per user
    epochs: int
    sft_examples: int
    sft_batch: int
    # each LLM batch job's texts, groups or prompts grown until it takes at least this long in one process here
    # (a fast CPU would otherwise finish it within a Ray pool's start, leaving no steady rate to measure); 0: as given
    min_job_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.model not in ("smollm2", "tiny"):
            raise ValueError(f"Sizes.model must be 'smollm2' or 'tiny', got {self.model!r}")
        for name, value in asdict(self).items():
            if name not in ("model", "min_job_seconds") and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Sizes.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.min_job_seconds, (int, float)) or not 0 <= self.min_job_seconds < 3600:
            raise ValueError(f"Sizes.min_job_seconds must be a number of seconds in [0, 3600), got "
                             f"{self.min_job_seconds!r}")


SIZES = {
    "full": Sizes(model="smollm2", texts=48, groups=4, candidates=21, prompts=12, new_tokens=24, chunk=3,
                  users=3000, items=2000, history=30, epochs=2, sft_examples=32, sft_batch=8, min_job_seconds=20.0),
    "quick": Sizes(model="tiny", texts=48, groups=6, candidates=8, prompts=8, new_tokens=8, chunk=2,
                   users=300, items=200, history=12, epochs=1, sft_examples=16, sft_batch=4),
}


@dataclass(frozen=True)
class PaperScale:
    """The workload projected: LEARN's scale (a few million items, tens of millions of interactions), plus the
    LLM-TRSR jobs for a million users."""

    items: int = 3_000_000
    interactions: int = 30_000_000
    users: int = 1_000_000
    candidates: int = 21
    summaries_per_user: int = 6  # 5 block summaries + 1 merge (LLM-TRSR's hierarchical mode)
    sft_examples: int = 1_000_000


# ------------------------------------------------------------------------------------------------ the model
def _model(sizes: Sizes) -> Any:
    """The measured model in float32: the bundled SmolLM2-135M, or the tiny test llama."""
    if sizes.model == "tiny":
        from recllm.llm.backbone import tiny_causal_lm

        return tiny_causal_lm(seed=0)
    from recllm.llm import load_causal_lm

    return load_causal_lm(None, device="cpu", dtype="float32")


def _texts(n: int) -> list[str]:
    topics = ["space", "a detective in Paris", "cooking with friends", "a long war", "jazz", "the ocean"]
    return [f"Item {i}: a story about " + ", ".join(topics[(i + k) % len(topics)] for k in range(1 + i % 4))
            for i in range(n)]


# ------------------------------------------------------------------------------------------------ batch jobs
def _timed(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def measure_batch_jobs(sizes: Sizes, max_workers: int = 2, show_progress: bool = False) -> dict[str, Any]:
    """Units per second of each LLM batch job in this process (1 thread), and the wall seconds of each job on
    Ray with 1..max_workers actors; the seconds ``ray.init`` took, and a job's pool start at each width (a
    one-text embedding job: actors started, model shipped and built). Ray is started here and shut down."""

    from recllm.distributed.ray_jobs import (RayOptions, embed_texts_ray, ensure_ray, generate_chunks_ray,
                                             score_continuations_ray, ship_model)
    from recllm.llm import chat_prompt, embed_texts, generate, next_token_logprobs_many
    from recllm.llm.hardware import count_flops

    set_threads(1)  # the driver computes like one worker (torch and BLAS)
    lm = _model(sizes)
    yes_no = [lm.tokenizer.convert_tokens_to_ids("Yes"), lm.tokenizer.convert_tokens_to_ids("No")]

    def inputs(sizes: Sizes) -> tuple[list[str], list[tuple[str, list[str]]], list[list[str]]]:
        """The texts embedded, the (prompt, candidates) groups scored and the prompt chunks generated."""
        texts = _texts(max(sizes.texts, sizes.groups, sizes.prompts))
        groups = [(chat_prompt(lm, f"The user liked: {t}. Will they like the next item? Answer Yes or No."),
                   [f"{c}" for c in _texts(sizes.candidates)]) for t in texts[:sizes.groups]]
        prompts = [chat_prompt(lm, f"Summarise what this user likes: {t}") for t in texts[:sizes.prompts]]
        return texts[:sizes.texts], groups, [prompts[s:s + sizes.chunk] for s in range(0, len(prompts), sizes.chunk)]

    def local(job: str) -> Callable[[], Any]:
        return {"embedding": lambda: embed_texts(lm, texts, batch_size=16, show_progress=False),
                "scoring": lambda: next_token_logprobs_many(lm, groups, yes_no, show_progress=False),
                "generation": lambda: [generate(lm, c, max_new_tokens=sizes.new_tokens, show_progress=False)
                                       for c in chunks]}[job]

    texts, groups, chunks = inputs(sizes)
    seconds = {job: _timed(local(job)) for job in JOBS}
    if sizes.min_job_seconds > 0:  # grow each job to its minimum time here (the timing above was the probe)
        grow = {job: min(20.0, sizes.min_job_seconds / seconds[job]) for job in JOBS}
        sizes = replace(sizes, **{field: max(getattr(sizes, field), int(np.ceil(getattr(sizes, field) * grow[job])))
                                  for field, job in (("texts", "embedding"), ("groups", "scoring"),
                                                     ("prompts", "generation"))})
        texts, groups, chunks = inputs(sizes)
        seconds = {job: _timed(local(job)) for job in JOBS}
    units = {"embedding": (len(texts), "items"), "scoring": (sizes.groups * sizes.candidates, "candidates"),
             "generation": (sizes.prompts, "prompts")}
    # the FLOPs of the same work, counted in a run of its own (the counter slows what it counts)
    flops = {job: count_flops(local(job))[1] for job in JOBS}
    out: dict[str, Any] = {"jobs": {job: {"local": units[job][0] / seconds[job]} for job in JOBS}, "units": units,
                           "flops_per_unit": {job: flops[job] / units[job][0] for job in JOBS},
                           "min_job_seconds": sizes.min_job_seconds}
    began = time.perf_counter()
    ensure_ray(RayOptions(workers=max_workers))
    out["ray_start_seconds"] = time.perf_counter() - began
    import ray

    try:
        shipped = ship_model(lm)
        for workers in range(1, max_workers + 1):
            options = RayOptions(workers=workers)
            runs = {
                "embedding": lambda: embed_texts_ray(lm, texts, batch_size=16, show_progress=show_progress,
                                                     options=options),
                "scoring": lambda: score_continuations_ray(shipped, groups, token_ids=yes_no,
                                                           show_progress=show_progress, options=options),
                "generation": lambda: generate_chunks_ray(shipped, chunks, max_new_tokens=sizes.new_tokens,
                                                          show_progress=show_progress, options=options),
            }
            out.setdefault("pool_start", {})[workers] = _timed(
                lambda: embed_texts_ray(lm, texts[:1], show_progress=False, options=options))
            for job in JOBS:
                out["jobs"][job][workers] = _timed(runs[job])
    finally:
        ray.shutdown()
    return out


# ------------------------------------------------------------------------------------------------ trainers
def _split(sizes: Sizes) -> Any:
    """A synthetic data set of ``users`` chronological histories (a popularity-skewed walk over the items)."""
    import pandas as pd

    from recllm.data.dataset import RecDataset, Schema
    from recllm.data.split import leave_one_out

    rng = np.random.default_rng(0)
    lengths = rng.integers(max(3, sizes.history // 2), sizes.history * 3 // 2 + 3, size=sizes.users)
    users = np.repeat(np.arange(sizes.users), lengths)
    steps = rng.zipf(1.5, size=len(users)) % sizes.items
    items = (np.cumsum(steps) + users * 7) % sizes.items
    times = np.concatenate([np.arange(n) for n in lengths]) + users * 1000
    inter = pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                          "timestamp": times.astype("int64")}).drop_duplicates(["user_id", "item_id"])
    catalogue = pd.DataFrame({"item_id": [f"i{i}" for i in range(sizes.items)],
                              "title": _texts(sizes.items)})
    people = pd.DataFrame({"user_id": [f"u{u}" for u in range(sizes.users)]})
    return leave_one_out(RecDataset("scaling-synthetic", inter, catalogue, people, Schema(item_text=("title",))))


def _train_towers(name: str, sizes: Sizes, count: bool = False) -> dict[str, Any]:
    """Fit SASRec or LEARN for ``epochs`` epochs; training transitions per second of training time (``count``: and
    the FLOPs of a training epoch per transition, counted after the timed fit)."""
    split = _split(sizes)
    settings = dict(dim=32, n_layers=1, n_heads=2, max_len=20, batch_size=128, max_epochs=sizes.epochs,
                    patience=sizes.epochs + 1, device="cpu", show_progress=False, seed=0)
    if name == "sasrec":
        from recllm.models.sasrec import SASRec

        model = SASRec(**settings).fit(split)
    else:
        from recllm.learn.train import LEARN, LEARNConfig

        content = np.random.default_rng(1).normal(size=(split.dataset.n_items, 64)).astype(np.float32)
        model = LEARN(LEARNConfig(**settings), content_embeddings=content).fit(split)
    seqs = split.sequences("train")
    transitions = int(sum(max(len(s) - 1, 0) for s in seqs.values()))
    seconds = float(sum(r["seconds"] for r in model.history_))
    out = {"units": transitions * len(model.history_), "unit": "interactions", "seconds": seconds}
    if count:
        began = time.perf_counter()
        out["flops_per_unit"] = _epoch_flops(model, split, settings["batch_size"]) / transitions
        out["count_seconds"] = time.perf_counter() - began
    return out


def _epoch_flops(model: Any, split: Any, batch_size: int) -> float:
    """The FLOPs of one training epoch of a fitted SASRec or LEARN (forward and backward of every batch, as its fit
    runs them; the optimizer's element-wise step is not counted)."""
    import torch

    from recllm.llm.hardware import count_flops

    rows, gen = model._training_rows(split), torch.Generator().manual_seed(0)
    model.net_.train()

    def epoch() -> None:
        for start in range(0, len(rows), batch_size):
            model._batch_loss(torch.from_numpy(rows[start:start + batch_size]), gen).backward()

    return count_flops(epoch)[1]


def _train_sft(sizes: Sizes, count: bool = False) -> dict[str, Any]:
    """LoRA SFT for one epoch; answer examples per second of training time (checkpoints excluded; ``count``: and the
    FLOPs per example, counted in a second epoch on a fresh model after the timed one)."""
    from recllm.llm.checkpoints import read_log
    from recllm.llm.sft import LoRAConfig, SFTConfig, sft_train

    lm = _model(sizes)
    texts = _texts(sizes.sft_examples)
    examples = [(f"<|im_start|>user\nWould a fan of space like this? {t}<|im_end|>\n<|im_start|>assistant\n",
                 "Yes" if i % 2 else "No") for i, t in enumerate(texts)]
    config = SFTConfig(epochs=1, batch_size=sizes.sft_batch, max_length=128, bf16=False, show_progress=False,
                       checkpoint_every=0, log_every=1, warmup_ratio=0.0, append_eos=False)
    with tempfile.TemporaryDirectory() as tmp:
        sft_train(lm, examples, config, LoRAConfig(dropout=0.0), output_dir=os.path.join(tmp, "sft"))
        records = read_log(os.path.join(tmp, "sft"))
        if count:
            from recllm.llm.hardware import count_flops

            began = time.perf_counter()
            fresh = _model(sizes)
            flops = count_flops(lambda: sft_train(fresh, examples, config, LoRAConfig(dropout=0.0),
                                                  output_dir=os.path.join(tmp, "counted")))[1]
    seconds = float(sum(r.get("seconds", 0.0) for r in records if "step" in r))
    out = {"units": len(examples), "unit": "examples", "seconds": seconds}
    if count:
        out.update(flops_per_unit=flops / len(examples), count_seconds=time.perf_counter() - began)
    return out


def trainer_main(name: str, result: str, size: str) -> None:
    """One process of a trainer measurement (run by torchrun); rank 0 writes ``result``."""

    from recllm.distributed.ddp import is_main_process, world_size

    set_threads(1)
    sizes = SIZES[size]
    count = world_size() == 1  # the work is the same at every width: its FLOPs are counted in the 1-process run
    out = _train_sft(sizes, count) if name == "sft" else _train_towers(name, sizes, count)
    if is_main_process():
        Path(result).write_text(json.dumps(out), encoding="utf-8")


def measure_trainer(name: str, size: str, processes: int) -> dict[str, Any]:
    """Run one trainer under torchrun with ``processes`` processes; its units/s and the launch overhead."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                               str(processes), "-m", "recllm.bench.scaling", "trainer", name, str(result), size],
                              env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - began
        if done.returncode != 0 or not result.exists():
            raise RuntimeError(f"the {name} trainer failed under torchrun with {processes} process(es):\n"
                               f"{done.stderr[-2000:]}")
        out = json.loads(result.read_text(encoding="utf-8"))
    # the FLOP count (1 process) is no part of a run's launch and set-up: its seconds are left out of the wall time
    return {**out, "per_second": out["units"] / out["seconds"], "wall": wall - out.get("count_seconds", 0.0)}


# ------------------------------------------------------------------------------------------------ the peak
def matmul_peaks(threads: tuple[int, ...] = (1, 2)) -> dict[int, float]:
    """This machine's float32 matmul peak (FLOP/s) at each number of torch threads: what each throughput of the
    report is a fraction of (1 process: the 1-thread peak; 2 workers or processes: the 2-thread peak)."""
    import torch

    from recllm.bench.foundation.machine import peak_flops

    before = torch.get_num_threads()
    try:
        peaks = {}
        for n in threads:
            torch.set_num_threads(n)
            peaks[n] = peak_flops("float32")
        return peaks
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------------ cost model
def project(per_worker: float, efficiency: float, work: float, workers: int, overhead: float = 0.0) -> float:
    """Projected seconds for ``work`` units on ``workers`` workers: a fixed ``overhead`` plus the work at the
    measured ``per_worker`` rate times the parallel ``efficiency`` (throughput at 2 / twice that at 1), assumed to
    hold at every width (no network, storage or straggler costs: a lower bound)."""
    if per_worker <= 0 or efficiency <= 0 or workers < 1:
        raise ValueError("project needs per_worker > 0, efficiency > 0 and workers >= 1")
    rate = per_worker * (1.0 if workers == 1 else min(efficiency, 1.0) * workers)
    return overhead + work / rate


def _steady(units: int, wall: float, pool_start: float) -> float:
    """Units per second of a job's wall time without its pool start (nan when the start took it all)."""
    busy = wall - pool_start
    return units / busy if busy > 0.05 * wall else float("nan")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 360 else f"{seconds / 60:,.1f} min"


def report_body(sizes: Sizes, batch: dict[str, Any], trainers: dict[str, dict[int, dict[str, Any]]],
                peaks: dict[int, float], scale: PaperScale = PaperScale(),
                widths: tuple[int, ...] = (1, 8, 64, 512)) -> str:
    """The report's tables from the measurements and the matmul ``peaks`` by thread count (see
    :func:`run_scaling`)."""
    from recllm.bench.foundation.machine import PEAK_SECONDS, PEAK_SIZE
    from recllm.eval.report import fmt_of_peak, format_table

    model = "SmolLM2-135M-Instruct" if sizes.model == "smollm2" else "tiny 2-layer llama (quick mode)"
    rows, rates, start = [], {}, batch["pool_start"]
    for job in JOBS:
        got, (count, unit) = batch["jobs"][job], batch["units"][job]
        row = {"job": job, "unit": unit, "work": count, "1 process (no Ray)": got["local"]}
        for w in (1, 2):
            wall = got.get(w, float("nan"))
            row[f"{w} worker(s): job"] = count / wall
            row[f"{w} worker(s): steady"] = _steady(count, wall, start.get(w, float("nan")))
        ratio = row["2 worker(s): steady"] / row["1 worker(s): steady"]
        row["steady 2 / 1"] = ratio
        flops = batch.get("flops_per_unit", {}).get(job)
        row["GFLOP / unit"] = "" if flops is None else f"{flops / 1e9:.3g}"
        row["1 process: of peak"] = fmt_of_peak(got["local"], flops, peaks.get(1))
        for w in (1, 2):  # each rate against the peak at the threads it had (one per worker)
            for kind in ("job", "steady"):
                row[f"{w} worker(s) {kind}: of peak"] = fmt_of_peak(row[f"{w} worker(s): {kind}"], flops,
                                                                   peaks.get(w))
        rows.append(row)
        rates[job] = (got["local"], ratio / 2, batch["ray_start_seconds"] + start.get(2, start[1]))
    lines = [f"Model: {model}, float32, one torch thread per worker/process. Throughput in units per second "
             "(higher is better), and as a fraction of this machine's measured float32 matmul peak ("
             + ", ".join(f"{peaks[n] / 1e9:.1f} GFLOP/s with {n} thread(s)" for n in sorted(peaks))
             + f"; a {PEAK_SIZE} x {PEAK_SIZE} matmul for {PEAK_SECONDS:.0f} s): *of peak* is units/s x the FLOPs of a "
             "unit (*GFLOP / unit*: the work's matrix products and attention, forward and, for trainers, backward, "
             "counted by torch's FlopCounterMode in a run of its own; element-wise work is not counted) over the "
             "peak at as many threads as the run used (1 process: 1; 2 workers or processes: 2). On Ray, *job* counts the whole job's wall time, *steady* leaves out the pool "
             "start (each job starts its actors, ships and builds the model: measured with a one-text job at the "
             "same width), so a job's share of the peak is below its steady share; nan where the pool start took "
             "(nearly) the whole job."
             + (f" Each job's work was grown until it took at least {batch['min_job_seconds']:g} s in one process on "
                "this machine (at most 20x the preset), so its steady rate is more than the pool start's noise."
                if batch.get("min_job_seconds") else ""), "",
             "## LLM batch jobs on Ray Data", "",
             format_table(rows, ["job", "unit", "work", "1 process (no Ray)", "1 worker(s): job",
                                 "1 worker(s): steady", "2 worker(s): job", "2 worker(s): steady", "steady 2 / 1",
                                 "GFLOP / unit", "1 process: of peak",
                                 *(f"{w} worker(s) {kind}: of peak" for w in (1, 2) for kind in ("job", "steady"))],
                          digits=2), "",
             f"Starting local Ray (`ray.init`, 2 CPUs): {batch['ray_start_seconds']:.1f} s, paid once per session. "
             "A job's pool start: " + ", ".join(f"{v:.1f} s at {w} worker(s)" for w, v in sorted(start.items()))
             + ", paid by every job.", ""]
    trows = []
    for name in TRAINERS:
        runs = trainers[name]
        one, two = runs[1], runs.get(2)
        ratio = two["per_second"] / one["per_second"] if two else float("nan")
        flops = one.get("flops_per_unit")
        trows.append({"trainer": {"sasrec": "SASRec", "learn": "LEARN towers", "sft": "LoRA SFT"}[name],
                      "unit": one["unit"], "1 process": one["per_second"],
                      "2 processes": two["per_second"] if two else float("nan"), "2 / 1 processes": ratio,
                      "GFLOP / unit": "" if flops is None else f"{flops / 1e9:.3g}",
                      "1 process: of peak": fmt_of_peak(one["per_second"], flops, peaks.get(1)),
                      "2 processes: of peak": fmt_of_peak(two["per_second"] if two else float("nan"), flops,
                                                       peaks.get(2)),
                      "launch + setup s (1 / 2)": f"{one['wall'] - one['seconds']:.1f} / "
                                                  f"{(two['wall'] - two['seconds']) if two else float('nan'):.1f}"})
        rates[name] = (one["per_second"], ratio / 2, (two or one)["wall"] - (two or one)["seconds"])
    lines += ["## Trainers under torchrun (DistributedDataParallel, gloo)", "",
              format_table(trows, ["trainer", "unit", "1 process", "2 processes", "2 / 1 processes",
                                   "GFLOP / unit", "1 process: of peak", "2 processes: of peak",
                                   "launch + setup s (1 / 2)"], digits=2), "",
              "Trainer throughput counts training time only (validation and checkpoints excluded); the last "
              "column is what torchrun, imports, data and model loading add per run.", ""]
    work = {"embedding": (scale.items, f"embed {scale.items:,} item texts"),
            "scoring": (scale.users * scale.candidates, f"score {scale.users:,} users x {scale.candidates} "
                                                         "candidates"),
            "generation": (scale.users * scale.summaries_per_user,
                           f"{scale.users * scale.summaries_per_user:,} summaries ({scale.users:,} users)"),
            "sasrec": (scale.interactions, f"one SASRec epoch over {scale.interactions:,} interactions"),
            "learn": (scale.interactions, f"one LEARN-towers epoch over {scale.interactions:,} interactions"),
            "sft": (scale.sft_examples, f"one LoRA SFT epoch over {scale.sft_examples:,} examples")}
    prow = []
    for key, (amount, label) in work.items():
        per_worker, efficiency, overhead = rates[key]
        if not np.isfinite(efficiency) or efficiency <= 0:
            efficiency = float("nan")
        row = {"workload": label, "per-worker rate": per_worker, "2-worker efficiency": efficiency,
               "start-up s": overhead}
        for n in widths:
            row[f"N={n}"] = "" if np.isnan(efficiency) and n > 1 else _hours(
                project(per_worker, 1.0 if np.isnan(efficiency) else efficiency, amount, n, overhead))
        prow.append(row)
    lines += ["## Projection to the LEARN paper's scale (a projection, not a measurement)", "",
              f"**Projected**, not measured: each workload divided by N workers x the per-worker rate measured "
              f"above (1 process, 1 CPU thread of this machine, {model}) x the steady 2-worker efficiency measured "
              "here (capped at 1), assumed constant at every N, plus the start-up measured here (Ray and a pool "
              "start; torchrun's launch and setup). It ignores data loading, network, stragglers and failures, so "
              "read it as a lower bound on time; a 7B LLM (the paper's) costs ~50x the 135M model's compute per "
              "token, and one GPU replaces many CPU workers. Empty: no efficiency could be measured.", "",
              format_table(prow, ["workload", "per-worker rate", "2-worker efficiency", "start-up s",
                                  *[f"N={n}" for n in widths]], digits=2)]
    return "\n".join(lines) + "\n"


def run_scaling(quick: bool = False, out: Any = None, show_progress: bool = True, command: str | None = None) -> int:
    """Measure, project and write the report (``out``: a path or a checked ReportTarget; ``command``: the command
    line for its header, default ``recllm bench scaling``)."""
    from recllm.bench.reporting import as_target
    from recllm.distributed import require_ray
    from recllm.eval.report import write_report

    require_ray("recllm bench scaling")  # before any work: the batch jobs run on Ray
    size = "quick" if quick else "full"
    target = as_target(out, "scaling-quick.md" if quick else "scaling.md")
    sizes = SIZES[size]
    say = (lambda m: print(m, file=sys.stderr)) if show_progress else (lambda m: None)
    say("scaling: this machine's float32 matmul peak at 1 and 2 threads")
    peaks = matmul_peaks()
    say("scaling: LLM batch jobs (local, Ray 1 and 2 workers)")
    batch = measure_batch_jobs(sizes)
    trainers: dict[str, dict[int, dict[str, Any]]] = {}
    for name in TRAINERS:
        trainers[name] = {}
        for processes in (1, 2):
            say(f"scaling: {name} under torchrun, {processes} process(es)")
            trainers[name][processes] = measure_trainer(name, size, processes)
    body = report_body(sizes, batch, trainers, peaks)
    write_report(target.path, "Scaling: Ray Data and torchrun on this machine", command or f"recllm bench {NAME}" + (" --quick" if quick else ""), [], body,
                 commit=target.commit, precision="float32 (set by the benchmark on every worker)",
                 overwrite=target.overwrite)
    say(f"scaling: wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """``recllm bench scaling [--quick]``."""
    from recllm.bench.reporting import add_report_args

    p = bench.add_parser("scaling", help="throughput at 1 and 2 Ray workers / torchrun processes, and a "
                         "projection to the LEARN paper's scale -> docs/results/scaling.md (~10 min)")
    p.add_argument("--quick", action="store_true", help="the tiny model and tiny sizes (a check that it runs)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_report_args(p, "scaling.md",
                    lambda args: run_scaling(quick=args.quick, out=args.report, show_progress=not args.quiet,
                                             command=args.command))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "trainer" and sys.argv[2] in TRAINERS and sys.argv[4] in SIZES:
        trainer_main(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: python -m recllm.bench.scaling trainer {sasrec,learn,sft} RESULT.json {full,quick}; "
                 "the benchmark itself is `recllm bench scaling`")
