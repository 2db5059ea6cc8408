"""``recllm bench impute --plan``: every unit of the benchmark, whether it is stored, and its estimated time here.

A unit is one row of the run store: a (data set, seed, setting, imputer) run -- fill the masked tables, score them,
train the downstream DLRMs -- or the complete tables' DLRMs of a (data set, seed). Times come from short probes on
this machine (:func:`probe_rates`): whole-row SFT runs of two and six steps (their difference prices a row) and a
few filled cells of the LLM imputer per table, GReaT fine-tunes of one and three steps (their difference is a step,
the rest the fixed cost of a fine-tune) and a few GReaT rows, one fit of each other imputer on the MCAR 20% tables,
one DLRM epoch per task. The LLM and GReaT estimates assume every allowed epoch is trained (early stopping can only
make them shorter); GReaT's follow its budget rule (:func:`recllm.bench.impute.budget.great_budget`): its settings
only, its steps, one fit per (table, seed) with ``llm_fit="shared"``. A shared fit's (data set, seed) runs all or
nothing, so its fit is counted (in its first unit) whenever any of its settings is not stored, and then every one of
its units is to run.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rates", "Unit", "probe_rates", "plan_units", "format_plan", "plan_benchmark"]

PROBE_SFT_STEPS = (2, 6)  # optimizer steps of the two SFT probes (their difference is four steps' time)
# rows of a table the probe's LLM imputer is fitted on (it gives the fill probe its model, and the SFT probes their
# examples: enough for the longer one's steps at DEFAULT_SFT's batch of 8)
PROBE_ROWS = PROBE_SFT_STEPS[1] * 8
PROBE_FILL_ROWS = 24  # rows with gaps whose cells the fill probe fills
PROBE_GREAT_ROWS = 3  # incomplete rows GReaT's probe fills
PROBE_GREAT_STEPS = (1, 3)  # optimizer steps of GReaT's two probe fine-tunes


@dataclass
class Rates:
    """Seconds measured here: per trained row and per filled cell (LLM), per optimizer step, per fine-tune (fixed
    cost) and per filled row (GReaT), per table fit+fill of each other imputer, and per downstream DLRM run of a
    data set (all its tasks)."""

    llm_row_s: dict[str, float] = field(default_factory=dict)  # table -> s per row per epoch
    llm_cell_s: dict[str, float] = field(default_factory=dict)  # table -> s per filled cell
    great_step_s: dict[str, float] = field(default_factory=dict)  # table -> s per optimizer step
    great_fit_s: dict[str, float] = field(default_factory=dict)  # table -> s a fine-tune costs besides its steps
    great_fill_row_s: dict[str, float] = field(default_factory=dict)
    imputer_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (table, imputer) -> s per fit+fill
    dlrm_s: dict[str, float] = field(default_factory=dict)  # data set -> s for every task at its max epochs
    load_average: float = float("nan")
    cpu_share: float = float("nan")  # the share of its threads' cores the probing process got (CPU / wall time)


@dataclass(frozen=True)
class Unit:
    """One resumable piece of the benchmark (one run-store row)."""

    dataset: str
    seed: int
    setting: str
    imputer: str
    stored: bool
    seconds: float


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def probe_rates(config: Any, imputers: tuple[str, ...], base_lm: Any = None, log: Any = print) -> Rates:
    """Measure :class:`Rates` on this machine for ``config``'s data sets and ``imputers``."""
    from recllm.bench.impute.run import make_imputer, masked_tables
    from recllm.bench.impute.tasks import TABLES, TASKS, feature_table, run_task, split_rows, SPLIT_FRACTIONS
    from recllm.data import load
    from recllm.bench.reporting import ShareClock
    from recllm.hardware import load_average

    rates = Rates()
    clock = ShareClock()
    probe = dataclasses.replace(config, llm_max_rows=PROBE_ROWS, llm_max_epochs=1)
    for dataset in config.datasets:
        ds = load(dataset)
        tables = masked_tables(ds, dataset, ("mcar", 0.2), 0)
        for spec in TABLES[dataset]:
            _, masked, mask = tables[spec.name]
            gappy = masked[mask.any(axis=1)]
            for name in imputers:
                if name in ("llm", "great"):
                    continue
                imputer = make_imputer(name, spec, 0, config)
                rates.imputer_s[(spec.name, name)] = _timed(lambda: imputer.fit(masked).transform(masked))
            if "llm" in imputers:
                rates.llm_row_s[spec.name], rates.llm_cell_s[spec.name] = _probe_llm(spec, masked, gappy, probe,
                                                                                     base_lm)
                log(f"[plan] {spec.name}: LLM {rates.llm_row_s[spec.name]:.2f} s per trained row, "
                    f"{1 / rates.llm_cell_s[spec.name]:.1f} cells/s filled")
            if "great" in imputers:
                fits = []
                for steps in PROBE_GREAT_STEPS:
                    imputer = make_imputer("great", spec, 0, dataclasses.replace(probe, great_max_steps=steps))
                    imputer.set_params(checkpoint_root=None)  # a probe resumed from a checkpoint would time nothing
                    imputer.fit(masked.iloc[:PROBE_ROWS * 4])
                    fits.append((imputer.train_steps_, imputer.fit_seconds_))
                (few_steps, few_s), (more_steps, more_s) = fits
                step_s = max(more_s - few_s, 0.0) / max(more_steps - few_steps, 1)
                rates.great_step_s[spec.name], rates.great_fit_s[spec.name] = step_s, max(few_s - few_steps * step_s, 0)
                few = gappy.iloc[:PROBE_GREAT_ROWS]
                rates.great_fill_row_s[spec.name] = _timed(lambda: imputer.transform(few)) / max(len(few), 1)
                log(f"[plan] {spec.name}: GReaT {step_s:.2f} s per step + {rates.great_fit_s[spec.name]:.0f} s per "
                    f"fine-tune, {rates.great_fill_row_s[spec.name]:.1f} s per filled row")
        split = split_rows(len(ds.interactions), SPLIT_FRACTIONS[dataset], 0)
        complete = {spec.name: feature_table(ds, spec) for spec in TABLES[dataset]}
        one_epoch = dataclasses.replace(config.dlrm[dataset], max_epochs=1)
        seconds = sum(run_task(task, ds, complete, split, 0, one_epoch)["dlrm_seconds"] for task in TASKS[dataset])
        rates.dlrm_s[dataset] = seconds * config.dlrm[dataset].max_epochs
    rates.load_average = load_average()
    rates.cpu_share = clock.share()
    return rates


def _probe_llm(spec: Any, masked: Any, gappy: Any, probe: Any, base_lm: Any) -> tuple[float, float]:
    """(seconds per trained row, seconds per filled cell) of the LLM imputer on this table: SFT runs of
    :data:`PROBE_SFT_STEPS` steps of the benchmark's whole-row examples, whose difference is the steps' time (the
    rest -- wrapping the model, the optimizer, the first step's warm-up, the checkpoint -- is paid once per
    fine-tune), then a fill of the gaps of :data:`PROBE_FILL_ROWS` rows (no answer cache)."""
    from recllm.bench.impute.run import make_imputer
    from recllm.llm.backbone import load_trainable_lm, trainable_copy
    from recllm.llm.sft import LoRAConfig, sft_train

    imputer = make_imputer("llm", spec, 0, probe, base_lm, cache=False)
    lm = trainable_copy(base_lm) if base_lm is not None else load_trainable_lm(probe.llm_model)
    imputer.fit(masked)  # PROBE_ROWS rows, one epoch: also gives the model the fill probe uses
    config = dataclasses.replace(imputer._sft_config(), show_progress=False)
    examples = imputer.whole_row_examples(masked, end=lm.tokenizer.eos_token or "")(0)
    few_steps = min(PROBE_SFT_STEPS[0], max(len(examples) // config.batch_size - 1, 1))
    more_steps = min(PROBE_SFT_STEPS[1], len(examples) // config.batch_size)
    if more_steps <= few_steps:  # a table too small for two probes: the one step's time, fixed costs included
        few_steps, more_steps = 0, max(more_steps, 1)
    timed = [0.0] if few_steps == 0 else []
    for steps in (few_steps, more_steps)[len(timed):]:
        fresh = trainable_copy(lm)
        with tempfile.TemporaryDirectory() as folder:
            timed.append(_timed(lambda: sft_train(fresh, examples, config, LoRAConfig(), output_dir=folder,
                                                  stop_after_steps=steps)))
    row_s = max(timed[1] - timed[0], 0.0) / ((more_steps - few_steps) * config.batch_size)
    few = gappy.iloc[:PROBE_FILL_ROWS]
    imputer.transform(few)
    cells = max(imputer.report_.n_filled, 1)
    return row_s, imputer.report_.seconds / cells


# the fill measured against the peak after each unit (recllm.bench.impute.compute): a sample filled twice, the
# counted pass taken as twice the timed one's seconds (torch's FLOP counter slows what it counts), plus the peak
FILL_MEASURE_FILLS = 3.0
FILL_MEASURE_PEAK_SECONDS = 1.5


def _fill_measure_seconds(incomplete_rows: int, seconds_per_row: float) -> float:
    """What measuring a unit's fill against the peak adds (:mod:`recllm.bench.impute.compute`)."""
    from recllm.bench.impute.compute import FILL_SAMPLE_ROWS

    rows = min(FILL_SAMPLE_ROWS, incomplete_rows)
    return FILL_MEASURE_FILLS * rows * seconds_per_row + FILL_MEASURE_PEAK_SECONDS if rows else 0.0


def _llm_seconds(config: Any, rates: Rates, spec: Any, masked: Any, mask: Any, fits: bool) -> float:
    from recllm.impute.llm import MAX_VALIDATION_CELLS, VALIDATION_FRACTION

    cells = int(mask.to_numpy().sum())
    incomplete = int(mask.to_numpy().any(axis=1).sum())
    seconds = cells * rates.llm_cell_s[spec.name]
    seconds += _fill_measure_seconds(incomplete, cells / max(incomplete, 1) * rates.llm_cell_s[spec.name])
    if fits:
        epochs = config.max_epochs()
        rows = int(masked.notna().any(axis=1).sum())
        rows = min(rows, config.llm_max_rows or rows)
        gaps = [c for c in masked.columns if masked[c].isna().any()]
        observed = int(masked[gaps].notna().to_numpy().sum())
        held = min(config.llm_max_validation_cells or MAX_VALIDATION_CELLS, int(round(VALIDATION_FRACTION * observed)))
        held = held if epochs > 1 else 0
        seconds += epochs * (rows * rates.llm_row_s[spec.name] + held * rates.llm_cell_s[spec.name])
    return seconds


def _great_seconds(config: Any, rates: Rates, spec: Any, masked: Any, mask: Any, fits: bool) -> float:
    """GReaT on one table: a sampled row per incomplete row (tries included in the probe's rate) and the fill's
    measurement against the peak, and, when it is fitted here, its budget's optimizer steps plus a fine-tune's fixed
    cost."""
    incomplete = int(mask.to_numpy().any(axis=1).sum())
    seconds = incomplete * rates.great_fill_row_s[spec.name]
    seconds += _fill_measure_seconds(incomplete, rates.great_fill_row_s[spec.name])
    if fits:
        steps = config.great_budget().steps(len(masked))
        seconds += rates.great_fit_s[spec.name] + steps * rates.great_step_s[spec.name]
    return seconds


def plan_units(config: Any, imputers: tuple[str, ...], rates: Rates, store: Any) -> list[Unit]:
    """Every unit in the order the benchmark runs them, stored or not, with its estimated seconds. ``imputers``:
    those that run (the shared-fit references of :meth:`BenchConfig.unit_imputers` are added here). A shared-fit
    imputer's (data set, seed) is all or nothing (:func:`recllm.bench.impute.run.stored_group`): its units are stored
    only when the whole group is, else every one of them is to run and its first counts the fit."""
    from recllm.bench.impute.run import (SHARED_REFERENCES, UNIT_FIELDS, base_imputer, group_keys, masked_tables,
                                         setting_name, stored_group, unit_key)
    from recllm.bench.impute.tasks import TABLES
    from recllm.data import load

    units = []
    names = config.unit_imputers(imputers)

    def seconds_of(name: str, dataset: str, tables: dict[str, Any], fits: bool) -> float:
        seconds = 0.0 if name in SHARED_REFERENCES else rates.dlrm_s[dataset]  # the references train no DLRM
        for spec in TABLES[dataset]:
            _, masked, mask = tables[spec.name]
            if name == "llm":
                seconds += _llm_seconds(config, rates, spec, masked, mask, fits)
            elif name == "great":
                seconds += _great_seconds(config, rates, spec, masked, mask, fits)
            else:
                seconds += rates.imputer_s[(spec.name, base_imputer(name))]
        return seconds

    for dataset in config.datasets:
        ds = load(dataset)
        for seed in config.seeds:
            units.append(Unit(dataset, seed, "complete", "none",
                              unit_key(dataset, seed, ("complete", 0.0), "none", config) in store,
                              rates.dlrm_s[dataset]))
            tables = {setting: masked_tables(ds, dataset, setting, seed) for setting in config.settings}
            for setting in config.settings:
                for name in (n for n in names if config.runs(n, setting) and not config.shares_fit(n)):
                    units.append(Unit(dataset, seed, setting_name(setting), name,
                                      unit_key(dataset, seed, setting, name, config) in store,
                                      seconds_of(name, dataset, tables[setting], True)))
            for name in (n for n in names if config.shares_fit(n)):
                keyed = group_keys(name, dataset, seed, config)
                stored = stored_group(store, [key for _, key in keyed], UNIT_FIELDS) is not None
                for i, (setting, _) in enumerate(keyed):
                    units.append(Unit(dataset, seed, setting_name(setting), name, stored,
                                      seconds_of(name, dataset, tables[setting], fits=i == 0)))
    return units


def idle_share(rates: Rates) -> float:
    """:func:`recllm.bench.reporting.idle_share` of a probe's rates."""
    from recllm.bench.reporting import idle_share as share_of

    return share_of(rates.cpu_share, rates.load_average)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def format_plan(units: list[Unit], rates: Rates, skipped: list[str] | None = None) -> str:
    """The plan as text: the probe's rates, one line per unit, time left per imputer and in total."""
    lines = [f"measured here (load average {rates.load_average:.1f} on {os.cpu_count()} CPUs while probing; a busier "
             "machine measures slower):"]
    for table in rates.llm_row_s:
        lines.append(f"  {table}: LLM whole-row SFT {rates.llm_row_s[table]:.2f} s per row per epoch, fill "
                     f"{1 / rates.llm_cell_s[table]:.1f} cells/s")
    for table in rates.great_step_s:
        lines.append(f"  {table}: GReaT {rates.great_step_s[table]:.2f} s per optimizer step + "
                     f"{rates.great_fit_s[table]:.0f} s per fine-tune, {rates.great_fill_row_s[table]:.1f} s per "
                     "filled row")
    for dataset, seconds in rates.dlrm_s.items():
        lines.append(f"  {dataset}: downstream DLRMs <= {seconds:.0f} s per unit (one epoch per task x max epochs)")
    lines += list(skipped or ())
    left: dict[str, float] = {}
    for u in units:
        lines.append(f"{u.dataset:12s} seed {u.seed}  {u.setting:9s} {u.imputer:11s} "
                     f"{'stored' if u.stored else 'to run':6s} ~{_duration(u.seconds)}")
        if not u.stored:
            left[u.imputer] = left.get(u.imputer, 0.0) + u.seconds
    stored = sum(u.stored for u in units)
    lines.append(f"{stored} of {len(units)} units stored; time left by imputer: "
                 + (", ".join(f"{k} ~{_duration(v)}" for k, v in left.items()) or "none"))
    lines.append(f"estimated time left on this machine: ~{_duration(sum(left.values()))} (each unit is stored as it "
                 "finishes; rerun the same command to resume, or split it with --datasets / --seeds / --imputers)")
    share = idle_share(rates)
    if share < 0.95:
        lines.append(f"on an idle machine roughly ~{_duration(sum(left.values()) * share)} (the probe had about "
                     f"{share:.0%} of its cores, by its CPU time over its wall time, at load "
                     f"{rates.load_average:.1f} on {os.cpu_count()} CPUs)")
    return "\n".join(lines)


def plan_benchmark(config: Any, out: Any = None, show_progress: bool = False, log: Any = print,
                   rates: Rates | None = None) -> int:
    """Print every unit of ``recllm bench impute`` with ``config``, whether it is stored and its estimated time on
    this machine (``rates``: measured by :func:`probe_rates` unless given); runs nothing else."""
    from pathlib import Path

    from recllm.bench.impute.run import peers_available, setting_name, skipped_line
    from recllm.bench.reporting import REPORT_FOLDER
    from recllm.bench.runs import RunStore

    default = "imputation-quick.md" if config.quick else "imputation.md"
    path = Path(getattr(out, "path", out) or Path.cwd() / REPORT_FOLDER / default)
    store = RunStore(path.with_suffix(".runs.jsonl"))
    available = peers_available()
    imputers = tuple(i for i in config.imputers if available.get(i, True))
    skipped = [skipped_line(i) for i in config.imputers if not available.get(i, True)]
    if "great" in imputers:
        budget = config.great_budget()
        where = ", ".join(setting_name(s) for s in budget.settings) or "no setting of this run"
        skipped.append(f"GReaT at {where} only (budget rule, recllm.bench.impute.budget): {budget.describe()}")
    if rates is None:
        base_lm = None
        if "llm" in imputers:
            from recllm.llm.backbone import load_trainable_lm

            base_lm = load_trainable_lm(config.llm_model)
        start = time.perf_counter()
        rates = probe_rates(config, imputers, base_lm, log=log if show_progress else (lambda *_: None))
        log(f"[plan] probes took {time.perf_counter() - start:.0f} s")
    log(format_plan(plan_units(config, imputers, rates, store), rates, skipped))
    return 0
