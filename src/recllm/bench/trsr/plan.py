"""``recllm bench trsr --plan``: every unit of the benchmark, whether it is stored, and its estimated time here.

Units: the lr choice (the grid's seed-0 hierarchical and no-summary runs; each mode's chosen one is its headline
run), each SFT run (stored when its folder holds a finished run), each data set's part per seed (ID baselines, the
scoring passes, injection; stored in the run store), the first seed's two-stage protocol (a piece of its own, which
trains seed 0's reranking rankers again when their pieces are stored but this machine's cache lacks their adapters:
the plan says so), and the learning curve. SASRec and LEARN fits are priced at their epoch cap times
:data:`RETRIEVER_EPOCH_S` (not probed). Times come from a short probe on this machine (:func:`probe_rates`): two
grouped-SFT steps, one user's 21 candidates and one single-candidate prompt scored, one batch of summaries at the
benchmark's batch size; an SFT run of a kind this machine has trained before (same autocast and threads) is timed by
those runs' logged steps instead (:func:`logged_sft_seconds`; a probe taken beside a busy process once priced a step
10x slower than the campaign's runs logged it), and an interrupted one by the steps it has left. Summaries are
counted as the distinct prompts every run needs (blocks shared between a user's training, validation and test
histories are generated once), less those the benchmark's summary cache (the machine's and the carried
``<report>.texts.jsonl``) already holds (:func:`summary_prompts_to_generate`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from recllm.bench.reporting import ShareClock, calmer_now

__all__ = ["Rates", "Unit", "probe_rates", "plan_units", "format_plan", "logged_sft_seconds",
           "summary_prompt_count", "summary_prompts_to_generate"]

# seconds of one SASRec or LEARN epoch assumed by the plan: about SASRec's on ML-latest-small on one thread of a busy
# 2-core AMD EPYC (Amazon's take under a second), so an upper bound for a retriever fit
RETRIEVER_EPOCH_S = 20.0


@dataclass(frozen=True)
class Rates:
    """Measured seconds per training group (one optimizer pass over a user's 21 candidates), per scored candidate
    (21 behind one shared prefix), per single-candidate prompt (the injection test) and per generated summary prompt
    (in batches of ``summary_batch``)."""

    sft_group_s: float
    score_candidate_s: float
    summary_prompt_s: float
    load_average: float = float("nan")  # 1-minute load average when the probe ended
    score_prompt_s: float = float("nan")
    summary_batch: int = 2
    cpu_share: float = float("nan")  # the share of its threads' cores the SFT probes got (CPU / wall time)

    @property
    def single_prompt_s(self) -> float:
        """Seconds of a one-candidate prompt (21 candidates' worth when it was not probed)."""
        return self.score_prompt_s if self.score_prompt_s == self.score_prompt_s else 21 * self.score_candidate_s


@dataclass(frozen=True)
class Unit:
    """One resumable piece of the benchmark."""

    dataset: str
    name: str
    stored: bool
    seconds: float
    logged_s: float = 0.0  # the part of ``seconds`` timed by this machine's logged runs (the rest: by the probe)


PROBE_SFT_STEPS = (1, 3)  # optimizer steps of the two SFT probes (their difference is two steps' time)


def probe_rates(summarizer: Any, data: Any, sizes: Any, show_progress: bool = False) -> Rates:
    """Time grouped-SFT runs of :data:`PROBE_SFT_STEPS` steps (their difference: the per-group time without model
    loading and the first step's warm-up), scoring one user's 21 candidates and one single-candidate prompt, and one
    batch of ``sizes.gen_batch`` summary prompts on this machine, with prompts of the benchmark's shape (real item
    texts and histories of ``data``, a summary of ``sizes.summary_tokens`` tokens)."""
    import tempfile

    from recllm.bench.trsr.run import bench_trsr_config, training_autocast
    from recllm.llm import load_trainable_lm
    from recllm.llm.sft import sft_train
    from recllm.trsr.pipeline import dataset_item_texts
    from recllm.trsr.ranker import LLMRanker, RankQuery
    from recllm.trsr.summarize import summarize_histories

    config = bench_trsr_config("hierarchical", sizes, data.spec, 0, bf16=training_autocast(summarizer))
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

    per_step = config.sft.batch_size * config.sft.grad_accum
    q, c, y = groups(PROBE_SFT_STEPS[1] * per_step)
    seconds = []
    clock = ShareClock()
    for steps in PROBE_SFT_STEPS:  # the difference of the two is the steps' time, without the fixed costs
        trainable = load_trainable_lm(summarizer.name)
        ranker = LLMRanker(trainable, config.ranker, sft=dataclasses.replace(config.sft, show_progress=False),
                           lora=config.lora, show_progress=False)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            sft_train(trainable, ranker.groups(q[:steps * per_step], c[:steps * per_step], y[:steps * per_step]),
                      dataclasses.replace(config.sft, show_progress=False), config.lora, output_dir=folder,
                      stop_after_steps=steps)
            seconds.append(time.perf_counter() - start)
    cpu_share = clock.share()
    extra = PROBE_SFT_STEPS[1] - PROBE_SFT_STEPS[0]
    sft_s = ((seconds[1] - seconds[0]) / (extra * per_step) if seconds[1] > seconds[0]
             else seconds[1] / (PROBE_SFT_STEPS[1] * per_step))
    scorer = LLMRanker(summarizer, config.ranker, fine_tune=False, show_progress=False).fit([], [], [])
    q, c, _ = groups(2)
    scorer.score(q[:1], c[:1], use_cache=False)  # warm-up
    start = time.perf_counter()
    scorer.score(q[1:], c[1:], use_cache=False)
    score_s = (time.perf_counter() - start) / len(c[1])
    start = time.perf_counter()
    scorer.score(q[:1], [c[0][:1]], use_cache=False)
    prompt_s = time.perf_counter() - start
    batch = min(sizes.gen_batch, config.summarizer.chunk_size)  # the prompts one generate call of the run holds
    # one block each (one prompt per history), from the users with the longest histories (full blocks)
    order = np.argsort([-len(h) for h in data.test.histories], kind="stable")[:batch]
    hists = [np.asarray(data.test.histories[i])[-5:] for i in order]
    start = time.perf_counter()
    done = summarize_histories(summarizer, hists, texts, config.summarizer, cache=None, show_progress=False)
    summary_s = (time.perf_counter() - start) / max(done.prompts, 1)
    return Rates(sft_s, score_s, summary_s, _load_average(), prompt_s, len(hists), cpu_share)


def _load_average() -> float:
    from recllm.hardware import load_average

    return load_average()


def cached_rates(summarizer: Any, data: Any, sizes: Any, show_progress: bool = False, log: Any = print) -> Rates:
    """:func:`probe_rates`, measured once per machine, model and summary length (kept under the recllm cache), and
    again when a probe from a saturated machine, or one starved of its cores, meets a calmer one
    (:func:`recllm.bench.reporting.calmer_now`)."""
    import json
    import os

    from recllm.utils import cache_dir, write_json_atomic

    key = f"{summarizer.fingerprint}|{sizes.summary_tokens}|{sizes.gen_batch}|{os.cpu_count()}|v3"
    import hashlib

    path = cache_dir("trsr", "plan") / f"rates-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        stored = Rates(**json.loads(path.read_text(encoding="utf-8")))
        if not calmer_now(stored.load_average, _load_average(), os.cpu_count() or 1, stored.cpu_share):
            log(f"[trsr] throughput probe reused from {path} (load average {stored.load_average:.1f} then)")
            return stored
        log(f"[trsr] the stored probe ran on a busy machine (load average {stored.load_average:.1f}, "
            f"{stored.cpu_share:.0%} of its cores): probing again")
    log(f"[trsr] probing this machine ({' and '.join(map(str, PROBE_SFT_STEPS))} grouped-SFT steps, one user's "
        f"candidates scored, a batch of "
        f"{sizes.gen_batch} summaries) ...")
    start = time.perf_counter()
    rates = probe_rates(summarizer, data, sizes, show_progress)
    log(f"[trsr] probe took {time.perf_counter() - start:.0f} s")
    write_json_atomic(path, dataclasses.asdict(rates))
    return rates


def summary_prompt_count(hierarchical: list[np.ndarray], recurrent: list[np.ndarray], segment: Any) -> int:
    """Distinct generation prompts of the hierarchical summaries of ``hierarchical`` and the recurrent ones of
    ``recurrent`` (histories of item indices): a block summary per distinct block (the recurrent first step is the
    same prompt), a merge per distinct block sequence of two or more blocks, a recurrent step per distinct block
    prefix of two or more blocks. Identical prompts are generated once (the summary cache), so this is what a run
    generates when nothing is cached yet."""
    from recllm.trsr.segment import segment_history

    keys: set[tuple] = set()
    for mode, histories in (("hierarchical", hierarchical), ("recurrent", recurrent)):
        for h in histories:
            blocks = tuple(tuple(int(i) for i in b) for b in segment_history(h, segment))
            if not blocks:
                continue
            if mode == "hierarchical":
                keys.update(("block", b) for b in blocks)
                if len(blocks) > 1:
                    keys.add(("merge", blocks))
            else:
                keys.add(("block", blocks[0]))
                keys.update(("recurrent", blocks[:k + 1]) for k in range(1, len(blocks)))
    return len(keys)


PENDING = "\x00pending:"  # stands for a summary not generated yet, inside the prompts that depend on it


def summary_prompts_to_generate(summarizer: Any, config: Any, item_texts: list[str], hierarchical: list[np.ndarray],
                                recurrent: list[np.ndarray], cache: Any) -> tuple[int, int]:
    """``(distinct prompts, of which not in cache)`` of the summaries :func:`summary_prompt_count` counts, with the
    run's own prompts and cache keys (:mod:`recllm.trsr.summarize`): a block summary found in ``cache`` (anything
    with ``get_many``, e.g. the benchmark's :class:`recllm.bench.carried.CarriedCache`) lets the merge or recurrent
    prompt built on it be looked up too; a prompt built on a summary still to generate is itself to generate."""
    import hashlib

    from recllm.trsr import prompts
    from recllm.trsr.segment import segment_history
    from recllm.trsr.summarize import _CachedGenerator

    keyer = _CachedGenerator(summarizer, config, None, show_progress=False)  # its cache key, nothing generated
    known: dict[str, str] = {}  # prompt -> its summary, or a PENDING stand-in unique to the prompt

    def answers(messages: list[str]) -> list[str]:
        new = [m for m in dict.fromkeys(messages) if m not in known]
        keys = {m: keyer._key(m) for m in new if PENDING not in m}
        found = cache.get_many(list(keys.values())) if keys else {}
        for m in new:
            key = keys.get(m)
            known[m] = (found[key]["text"] if key in found
                        else PENDING + hashlib.sha256(m.encode("utf-8")).hexdigest())
        return [known[m] for m in messages]

    def blocks_of(h: np.ndarray) -> list[list[str]]:
        return [[item_texts[int(i)] for i in b] for b in segment_history(h, config.segment)]

    for h in hierarchical:
        steps = answers([prompts.block_summary_message(b, config.guarded) for b in blocks_of(h)])
        if len(steps) > 1:
            answers([prompts.merge_summary_message(steps)])
    for h in recurrent:
        summary = None
        for k, block in enumerate(blocks_of(h)):
            message = (prompts.block_summary_message(block, config.guarded) if k == 0
                       else prompts.recurrent_message(summary, block, config.guarded))
            summary = answers([message])[0]
    return len(known), sum(v.startswith(PENDING) for v in known.values())


def logged_sft_seconds(root: Any, model: str, bf16: bool, threads: int,
                       min_windows: int = 5) -> dict[str, tuple[float, int]]:
    """Seconds per training group this machine logged, by run kind (``hierarchical``, ``none``, ``recurrent``,
    ``hardened``: a run folder's name before ``-seed``): the median over the step windows of the
    ``training_log.jsonl`` of every SFT run under ``root`` (one data set's run folders) of the same base model
    (``model``: its name), autocast (``bf16``) and torch thread count in one process, with the number of windows
    (:func:`_logged_windows`). Kinds with fewer than ``min_windows`` are left out. This is a long campaign's real
    pace on the machine as it is loaded, where the probe takes a few seconds' sample."""
    return _paces(_logged_windows(root, model, bf16).get(threads, {}), min_windows)


def _paces(windows: dict[str, list[float]], min_windows: int = 5) -> dict[str, tuple[float, int]]:
    """Each kind's median window and window count, for kinds with at least ``min_windows``."""
    return {kind: (float(np.median(times)), len(times)) for kind, times in windows.items()
            if len(times) >= min_windows}


def _logged_windows(root: Any, model: str, bf16: bool) -> dict[int, dict[str, list[float]]]:
    """Torch thread count -> run kind -> seconds per training group of every logged step window of the one-process
    SFT runs under ``root`` of base model ``model`` and autocast ``bf16``. A window is the time between two step
    lines over the groups its steps took (``batch_size * grad_accum`` each, from the run's ``config.json``); the
    first one after a start or a resume (model loading, warm-up) is skipped, and so is a run whose files cannot be
    read as ``sft_train`` writes them."""
    import json
    import math
    from pathlib import Path

    from recllm.llm.checkpoints import read_log

    windows: dict[int, dict[str, list[float]]] = {}
    for log in sorted(Path(root).glob("*/sft/training_log.jsonl")):
        try:
            config = json.loads((log.parent / "config.json").read_text(encoding="utf-8"))
            resolved, sft = config["resolved"], config["sft"]
            if config["base_model"] != model or bool(resolved["bf16"]) != bf16 or \
                    int(resolved.get("world_size", 1)) != 1:
                continue
            threads, per_step = int(resolved["torch_threads"]), int(sft["batch_size"]) * int(sft["grad_accum"])
            found, previous = [], None
            for record in read_log(log.parent):
                if "step" in record and "seconds" in record and previous is not None and "seconds" in previous:
                    steps, seconds = int(record["step"]) - int(previous["step"]), float(record["seconds"])
                    if steps > 0 and per_step > 0 and math.isfinite(seconds):
                        found.append(seconds / (steps * per_step))
                previous = record
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # not as sft_train writes them
            continue
        kind = log.parent.parent.name.rsplit("-seed", 1)[0]
        windows.setdefault(threads, {}).setdefault(kind, []).extend(found)
    return windows


def _sft_progress(folder: Any) -> tuple[bool, float]:
    """Whether the SFT run in ``folder`` finished, and the share of its steps its latest checkpoint holds (where an
    interrupted run resumes; the step count from its log's newest start line). Unreadable files: not begun."""
    from recllm.llm.checkpoints import read_log
    from recllm.llm.sft import load_sft_state

    try:
        state = load_sft_state(folder / "sft")
        if not isinstance(state, dict):
            return False, 0.0
        if state.get("done"):
            return True, 1.0
        total = [r["total_steps"] for r in read_log(folder / "sft") if "total_steps" in r][-1]
        share = int(state["step"]) / int(total)
    except (FileNotFoundError, OSError, ValueError, KeyError, IndexError, TypeError, ZeroDivisionError):
        return False, 0.0
    return False, min(max(share, 0.0), 1.0)


def plan_units(data: Any, sizes: Any, rates: Rates, lr_choice: dict | None, stored_part: dict[int, bool],
               curve_stored: bool, summarizer: Any, cache: Any = None, rescore_faster: bool = False,
               piece_stored: Any = None, piece_score: Any = None,
               logged: dict[str, tuple[float, int]] | None = None) -> list[Unit]:
    """The units of one data set in the order the benchmark runs them.

    ``lr_choice``: the stored choice (None: not made yet, so the grid's runs are listed); ``stored_part``: seed ->
    whether its part is in the run store; ``piece_stored(seed, name)``: whether a piece of a part (seed None: of the
    learning curve or the lr grid) is stored (:func:`recllm.bench.trsr.run.stored_pieces`); ``piece_score(name)``:
    a stored lr-grid piece's validation score, or None (it says which further lr the grid needs);
    ``rescore_faster``: the faster scoring precision differs from the headline's, so every fine-tuned run's test
    rows are scored a second time; ``logged``: seconds per training group by run kind as this machine's earlier runs
    logged them (:func:`logged_sft_seconds`), used for SFT in place of the probe's rate where a kind has them."""
    def done(seed: int | None, piece: str) -> bool:
        return piece_stored is not None and piece_stored(seed, piece)

    from recllm.bench.trsr.run import (RETRIEVERS, Fitter, chosen_lr, curve_points, fusion_rows, lr_piece,
                                       seed_modes, two_stage_rankers, validates)
    from recllm.bench.trsr.scale import LR_MODES, extend_lr, lr_candidates, pick_lr
    from recllm.trsr.pipeline import training_cases

    name, units = data.spec.name, []
    fitter = Fitter(data, sizes, summarizer, cache, None)
    base = fitter.config("hierarchical", 0)
    grid = lr_candidates() if lr_choice is None else ()
    fitter.lr = chosen_lr(lr_choice) if lr_choice is not None else (grid[0] if len(grid) == 1 else None)
    from_grid = {f"{m}-seed0" for m in LR_MODES} if len(grid) > 1 else set()  # the grid's best run, reused
    grid_best: dict[str, float] = {}  # label -> the best lr of the grid's stored runs (its adapter may be gone)
    cand = 1 + 20
    valid_s = len(data.valid) * cand * rates.score_candidate_s  # once per epoch, where the run validates

    def cases(seed: int, users: int | None = None) -> Any:
        return training_cases(data.split, users or data.train.users, data.train.targets_per_user, seed,
                              data.test.users)

    def sft_unit(label: str, config: Any, groups: int, stored: bool = False, grid: bool = False,
                 fresh: bool = False) -> Unit:
        kind = label.rsplit("-seed", 1)[0]
        if not grid and label in from_grid and groups == data.train.groups:
            best = grid_best.get(label)
            best_config = None if best is None else fitter.config(kind, 0, lr=best)
            if best_config is None or stored or _sft_progress(fitter.run_dir(label, best_config))[0]:
                return Unit(name, f"SFT {label} ({groups} groups, the lr grid's best run above, reused while its "
                            "adapter is in this machine's cache; trained again, the same seeded run, on a machine "
                            "without it)", stored, 0.0)
            again = sft_unit(label, best_config, groups, grid=True)  # its folder is gone (another machine's run)
            return dataclasses.replace(again, name=again.name.replace(
                "; the lr grid", "; the lr grid's best so far, trained again as its adapter is not in this "
                "machine's cache"))
        pace = (logged or {}).get(kind)
        train_s = groups * config.sft.epochs * (pace[0] if pace else rates.sft_group_s)
        valid_part = config.sft.epochs * valid_s if validates(config) else 0.0
        # fresh: a run at an lr not known yet, which no folder holds
        finished, share = (False, 0.0) if fresh else _sft_progress(fitter.run_dir(label, config))
        resumes = f"; resumes at {share:.0%}" if 0 < share < 1 and not stored else ""
        left = 1 - share
        return Unit(name, f"SFT {label} ({groups} groups, lr {config.sft.learning_rate:g}"
                    + ("; the lr grid" if grid else "") + resumes + ")", stored or finished,
                    (train_s + valid_part) * left, logged_s=train_s * left if pace else 0.0)

    # summaries: every history a run summarises, each distinct prompt once
    valid_cases = data.split.eval_cases("valid")
    fusion = valid_cases.subset(fusion_rows(data.valid.case, len(valid_cases), sizes.n_fusion_rows))
    # test rows: every mode; validation rows: the runs that validate (the seed-0 hierarchical run always does)
    hier = list(data.test.histories) + list(fusion.histories) + list(data.valid.histories)
    recurrent = list(data.test.histories)
    points = [n for n in curve_points(sizes, data) if n != data.train.users]
    for n in points:
        hier += list(cases(0, n).histories)
    for position, seed in enumerate(sizes.seeds):
        modes, _ = seed_modes(sizes, position)
        train = list(cases(seed).histories)
        hier += train
        if any(m == "recurrent" for m, _ in modes):
            recurrent += train
            if validates(fitter.config("recurrent", seed)):
                recurrent += list(data.valid.histories)
    if cache is None:
        prompts = todo = summary_prompt_count(hier, recurrent, base.summarizer.segment)
        what = f"{prompts} distinct prompts at batch {rates.summary_batch}; cached ones are reused, not counted here"
    else:
        from recllm.trsr.pipeline import dataset_item_texts

        texts = dataset_item_texts(data.dataset, summarizer.tokenizer, data.spec.item_tokens, data.spec.columns)
        prompts, todo = summary_prompts_to_generate(summarizer, base.summarizer, texts, hier, recurrent, cache)
        what = f"{prompts} distinct prompts, {prompts - todo} cached, {todo} to generate at batch {rates.summary_batch}"
    units.append(Unit(name, f"summaries ({what})", todo == 0, todo * rates.summary_prompt_s))
    if len(grid) > 1:
        for mode in LR_MODES:
            scores: dict[float, float] = {}
            for lr in grid:
                units.append(sft_unit(f"{mode}-seed0", fitter.config(mode, 0, lr=lr), data.train.groups,
                                      done(None, lr_piece(mode, lr)), grid=True))
                score = piece_score(lr_piece(mode, lr)) if piece_score is not None else None
                if score is not None:
                    scores[lr] = score
            while len(scores) >= len(grid):  # every run so far is stored: the extension is known
                further = extend_lr(scores)
                if further is None:
                    break
                units.append(sft_unit(f"{mode}-seed0", fitter.config(mode, 0, lr=further), data.train.groups,
                                      done(None, lr_piece(mode, further)), grid=True))
                score = piece_score(lr_piece(mode, further)) if piece_score is not None else None
                if score is None:
                    break
                scores[further] = score
            if scores:
                grid_best[f"{mode}-seed0"] = pick_lr(scores)
            if len(scores) < len(grid):  # not known yet: one more run where the best is an edge of the grid
                run = sft_unit(f"{mode}-seed0", fitter.config(mode, 0, lr=grid[-1]), data.train.groups, grid=True,
                               fresh=True)
                units.append(dataclasses.replace(run, name=f"SFT {mode}-seed0 (lr grid: one more run, beyond the "
                                                 "grid's edge, only if an edge validates best; counted in the total)"))
    test_s = len(data.test) * cand * rates.score_candidate_s * (2 if rescore_faster else 1)
    injection_s = 2 * len(data.test) * rates.single_prompt_s  # an attacked negative and true item per row
    two_stage_s = (len(sizes.two_stage_modes) * (len(fusion) + sizes.n_rerank_rows) * sizes.rerank_k
                   * rates.score_candidate_s)
    speed_s = sizes.speed_rows * cand * (rates.score_candidate_s + rates.single_prompt_s)  # with and without sharing
    fit_s = sizes.retriever_epochs * RETRIEVER_EPOCH_S  # one SASRec or LEARN fit at its epoch cap
    for position, seed in enumerate(sizes.seeds):
        modes, hardened = seed_modes(sizes, position)
        part_s = 0.0 if done(seed, "baselines") else fit_s
        runs = [(f"{mode}-seed{seed}", fitter.config(mode, seed)) for mode, _ in modes]
        if hardened:
            runs.append((f"hardened-seed{seed}", fitter.config("hierarchical", seed, guarded=True,
                                                               inject_fraction=0.5)))
        for label, cfg in runs:
            stored = done(seed, label)
            units.append(sft_unit(label, cfg, data.train.groups, stored))
            if not stored:
                part_s += test_s + (injection_s if cfg.summarizer.mode == "hierarchical" else 0.0)
                if position == 0 and label == f"hierarchical-seed{seed}":  # the speed measurement
                    part_s += speed_s
        if position == 0 and not done(seed, "zero-shot"):  # zero-shot and its injection
            part_s += test_s + injection_s
        what = ", ".join(m for m, _ in modes) + (", hardened" if hardened else "")
        units.append(Unit(name, f"part seed {seed} (baselines; test scoring of {what}; injection"
                          + ("; zero-shot)" if position == 0 else ")"), stored_part.get(seed, False), part_s))
        if position == 0:  # the two-stage piece, and the SFT of a reranking ranker it has to train again
            fits = [RETRIEVERS[r] for r in sizes.retrievers if r in ("sasrec", "learn")]
            refit, stage_s, stage_logged = [], two_stage_s + len(fits) * fit_s, 0.0
            for mode in two_stage_rankers(sizes):
                run = sft_unit(f"{mode}-seed{seed}", fitter.config(mode, seed), data.train.groups)
                if done(seed, f"{mode}-seed{seed}") and not run.stored:  # its piece trains nothing this session
                    refit.append(f"{mode}-seed{seed}")
                    stage_s, stage_logged = stage_s + run.seconds, stage_logged + run.logged_s
            stored = stored_part.get(seed, False) or done(seed, "two-stage")
            what = (f"two-stage seed {seed} ({' and '.join(fits) or 'no'} fits of at most {sizes.retriever_epochs} "
                    f"epochs, ~{RETRIEVER_EPOCH_S:.0f} s an epoch assumed; rerank by "
                    f"{', '.join(two_stage_rankers(sizes))}, right after its piece"
                    + (f"; first trains {', '.join(refit)} again: its adapter is not in this machine's cache"
                       if refit and not stored else "") + ")")
            units.append(Unit(name, what, stored, stage_s, logged_s=stage_logged))
    for n in points:
        size = dataclasses.replace(data.train, users=n)
        groups = len(cases(0, n))
        for mode in ("hierarchical", "none"):
            unit = sft_unit(f"{mode}-seed0", fitter.config(mode, 0, train=size), groups,
                            done(None, f"curve-{mode}-{n}"))
            units.append(dataclasses.replace(unit, name=f"curve: {unit.name}, {n} users"))
    units.append(Unit(name, "learning curve (validation R@5 read back from the SFT runs' cached validation scores)",
                      curve_stored, 0.0))
    return units


def format_plan(units: list[Unit], rates: Rates,
                logged: dict[str, dict[str, tuple[float, int]]] | None = None) -> str:
    """The plan as text: one line per unit, then the remaining time. ``logged``: data set -> the SFT rates its
    units took from this machine's logged runs (:func:`logged_sft_seconds`), named in the header."""
    def hours(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"

    import os

    lines = [f"measured here (load average {rates.load_average:.1f} on {os.cpu_count()} CPUs while probing: a busier machine "
             f"measures slower): {rates.sft_group_s:.2f} s per training group (21 candidates), "
             f"{1 / rates.score_candidate_s:.1f} candidates/s scored, {rates.single_prompt_s:.2f} s per "
             f"single-candidate prompt, {rates.summary_prompt_s:.2f} s per summary prompt (batch of "
             f"{rates.summary_batch})"]
    for dataset, kinds in (logged or {}).items():
        if kinds:
            lines.append(f"SFT of {dataset} timed from this machine's logged runs (median seconds per training group "
                         "over their logged steps, at the load they ran under): " + ", ".join(
                             f"{kind} {s:.2f} s ({n} windows)" for kind, (s, n) in sorted(kinds.items())))
    left = probed = 0.0
    for u in units:
        if not u.stored:
            left += u.seconds
            probed += u.seconds - u.logged_s
        lines.append(f"{u.dataset:34s} {u.name:80s} {'stored' if u.stored else 'to run':6s} ~{hours(u.seconds)}")
    lines.append(f"estimated time left on this machine: ~{hours(left)} (SFT runs resume from checkpoints, scores and "
                 "summaries are cached, each part is stored as it finishes)")
    from recllm.bench.reporting import idle_share

    share = idle_share(rates.cpu_share, rates.load_average)
    if share < 0.95 and probed > 0:
        lines.append(f"on an idle machine roughly ~{hours(left - probed + probed * share)} (the probe had about "
                     f"{share:.0%} of its cores, by its CPU time over its wall time, at load {rates.load_average:.1f} "
                     f"on {os.cpu_count()} CPUs; the times from logged runs are kept as they were measured)")
    return "\n".join(lines)


def plan_benchmark(quick: bool = False, out: Any = None, datasets: list[str] | None = None,
                   seeds: list[int] | None = None, score_dtype: str = "auto", lr: float | None = None,
                   model_name: str | None = None, show_progress: bool = False, log: Any = print,
                   precision: str = "auto") -> int:
    """Print every unit of ``recllm bench trsr`` with these arguments, whether it is stored and its estimated
    time on this machine (from :func:`probe_rates`); runs nothing else."""
    from pathlib import Path

    from recllm.bench.reporting import REPORT_FOLDER
    from recllm.bench.carried import CarriedCache
    from recllm.bench.runs import RunStore, run_key
    import torch

    from recllm.bench.trsr.run import (_part_key, _unit_key, benchmark_specs, chosen_lr, inputs_identity, prepare,
                                       resolve_sizes, training_autocast)
    from recllm.utils import cache_dir, resolve_device
    from recllm.llm import load_causal_lm, resolve_dtype
    from recllm.llm.precision import TRAINING_DTYPE, check_dtype, use_bf16_autocast

    check_dtype(score_dtype, "--score-dtype")
    check_dtype(precision, "--precision")
    if precision != "auto" and score_dtype == "auto":  # as run_benchmark: a pinned precision scores once
        score_dtype = precision
    sizes = resolve_sizes(quick, seeds)
    specs = benchmark_specs(datasets)
    path = Path(getattr(out, "path", out) or Path.cwd() / REPORT_FOLDER / ("trsr-quick.md" if quick else "trsr.md"))
    store = RunStore(path.with_suffix(".runs.jsonl"))
    summarizer = load_causal_lm(model_name, dtype=precision)
    faster = resolve_dtype(score_dtype, summarizer.device)
    cache = CarriedCache(path.with_suffix(".texts.jsonl"))  # the summaries the run would find (read, as it does)
    rates = None
    units: list[Unit] = []
    logged: dict[str, dict[str, tuple[float, int]]] = {}
    for spec in specs:
        log(f"[trsr] {spec.name}: loading the split and its fixed candidates")
        data = prepare(spec, sizes, show_progress)
        inputs = inputs_identity(spec, data)
        if rates is None:
            rates = cached_rates(summarizer, data, sizes, show_progress, log)
        lr_key = _unit_key("bench-trsr-lr", spec, sizes, inputs, summarizer.fingerprint)
        if lr is not None:
            choice = {"lr": lr}
        else:
            choice = store.get(lr_key)
        stored_part = {}
        chosen = chosen_lr(choice) if choice else None
        for position, seed in enumerate(sizes.seeds):
            stored_part[seed] = chosen is not None and _part_key(spec, sizes, inputs, seed, position, chosen, faster,
                                                                 summarizer.fingerprint) in store
        curve = chosen is not None and _unit_key("bench-trsr-curve", spec, sizes, inputs, summarizer.fingerprint,
                                                 lr=chosen) in store
        part_keys = {seed: _part_key(spec, sizes, inputs, seed, position, chosen, faster, summarizer.fingerprint)
                     for position, seed in enumerate(sizes.seeds)} if chosen is not None else {}
        curve_key = (_unit_key("bench-trsr-curve", spec, sizes, inputs, summarizer.fingerprint, lr=chosen)
                     if chosen is not None else None)

        def piece_stored(seed: int | None, piece: str, part_keys: dict = part_keys, curve_key: Any = curve_key,
                         lr_key: str = lr_key) -> bool:
            # seed None: a piece of the learning curve ("curve-...") or of the lr grid ("lr-...")
            units = [curve_key, lr_key] if seed is None else [part_keys.get(seed)]
            return any(unit is not None and run_key(unit=unit, piece=piece) in store for unit in units)

        def piece_score(piece: str, lr_key: str = lr_key) -> float | None:
            row = store.get(run_key(unit=lr_key, piece=piece)) if run_key(unit=lr_key, piece=piece) in store else None
            return float(row["score"]) if isinstance(row, dict) and "score" in row else None

        device = resolve_device(summarizer.device) if summarizer.device else "cpu"  # as sft_train resolves it
        autocast = use_bf16_autocast(training_autocast(summarizer), device)
        threads = torch.get_num_threads()
        windows = _logged_windows(cache_dir("trsr", "runs", spec.name), summarizer.name, autocast)
        logged[spec.name] = _paces(windows.get(threads, {}))
        if not logged[spec.name]:
            other = sorted(n for n, kinds in windows.items() if n != threads and _paces(kinds))
            if other:
                log(f"[trsr] {spec.name}: this machine logged SFT runs at {', '.join(map(str, other))} torch "
                    f"thread(s), not at this plan's {threads}: timed by the probe (pass --threads "
                    f"{other[0]} to time by them)")
        units += plan_units(data, sizes, rates, choice, stored_part, curve, summarizer, cache=cache,
                            rescore_faster=faster != TRAINING_DTYPE, piece_stored=piece_stored,
                            piece_score=piece_score, logged=logged[spec.name])
    log(format_plan(units, rates, logged))
    return 0
