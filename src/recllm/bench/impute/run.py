"""``recllm bench impute``: every imputer x task x missingness setting x seed -> docs/results/imputation.md.

For each data set, seed and setting the feature tables are masked once (``recllm.data.missing.inject_missing``),
every imputer fills the same masked tables (scored on the masked cells), and a DLRM is trained per task on the same
seeded split. Results are stored per (data set, seed, setting, imputer, configuration) beside the report
(``imputation.runs.jsonl``, a :class:`recllm.bench.runs.RunStore` committed with it; a run is reused only while the
code that produced it, the data and the settings are unchanged), and the LLM imputer caches its adapters and
answers, so an interrupted run resumes, on this machine or a fresh one, and a rerun only rebuilds the report. With
the shared fit (``llm_fit="shared"``, not the default) a fine-tuned imputer's (data set, seed) is one all-or-nothing
group: its fit and its fills of every setting run in one process and are stored together, each row tagged with the
group's ``fit_group`` (:func:`stored_group`), so no table mixes two adapters (a fine-tune in float32 is not
bit-identical across CPUs, and its cache does not travel between machines). Beside it, the reference rows "MICE
(shared-fit cells)" and "miceforest (shared-fit cells)" (:data:`SHARED_REFERENCES`) fit MICE / miceforest on the
same union-masked table and fill each setting as the LLM imputer does, so the LLM imputer is compared with them on
equal data. Every row and key carries the versions of the libraries that decide the numbers
(:func:`library_versions`), so runs of different installs are never mixed.

``--attempts [NAMES]`` adds the LLM variants the paper's open questions point at (training rows, fine-tuning set
size, column order, more context, more epochs), scored on the masked cells at MCAR 20%.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recllm.bench.impute.budget import GREAT_SETTINGS, GReaTBudget, great_budget
from recllm.bench.runs import data_sha256, run_key
from recllm.data.missing import inject_missing
from recllm.impute.base import BaseImputer
from recllm.impute.registry import IMPUTERS
from recllm.bench.impute.tasks import (
    DLRM_PRESETS, SPLIT_FRACTIONS, TABLES, TASKS, DLRMSettings, TableSpec, code_columns, feature_table,
    imputation_scores, run_task, split_rows,
)

# The full preset runs LLMImputer on its own defaults (recllm.impute.llm: DEFAULT_SFT, whole-row training on every
# observed cell, epochs chosen on held-out observed cells); the benchmark's only departures are the ones named here and
# printed in the report. QUICK (development and tests) caps the training rows and epochs so it stays fast.
LLM_OVERRIDES: dict[str, Any] = {}
QUICK_LLM = {"llm_max_rows": 48, "llm_max_epochs": 2, "llm_max_validation_cells": 24, "great_max_steps": 4}
SETTINGS: tuple[tuple[str, float], ...] = (("mcar", 0.05), ("mcar", 0.2), ("mcar", 0.4), ("mar", 0.2), ("mnar", 0.2))
PEER_NAMES = ("miceforest", "great")  # optional extra `peers`: skipped (with a line in the report) when absent
IMPUTER_ORDER = ("deletion", "zero", "mean", "knn", "mice", "miceforest", "llm", "great")
LLM_FITS = ("shared", "per-setting")
FINE_TUNED = ("llm", "great")  # imputers that fine-tune a language model (shared fit with llm_fit="shared")
# With llm_fit="shared": reference rows of the classic / peer imputers fitted on the same union-masked table as the
# shared fine-tunes (the cells they trained on), filling each setting as they do; masked-cell scores only (no DLRM)
SHARED_REFERENCES = {"mice-shared": "mice", "miceforest-shared": "miceforest"}
REFERENCE_LABELS = {"mice-shared": "MICE (shared-fit cells)", "miceforest-shared": "miceforest (shared-fit cells)"}
# The libraries whose versions decide a run's numbers: stored in every row and part of every key
VERSIONED = ("torch", "transformers", "peft", "numpy", "pandas", "scikit-learn", "miceforest", "lightgbm", "be-great")
# QUICK leaves GReaT out unless asked for (--imputers ... great): its own `impute` samples each incomplete row in turn
# (measured here: about a minute per row on a busy 2-core CPU), so even MCAR 5% of one table takes hours.
QUICK_IMPUTERS = tuple(i for i in IMPUTER_ORDER if i != "great")
ATTEMPTS: dict[str, dict[str, Any]] = {  # LLMImputer overrides per attempt (on top of the benchmark's defaults)
    "default": {},
    "complete-rows": {"train_on": "complete_rows"},
    "rows/4": {"rows_scale": 0.25},  # a seeded quarter of the table's rows
    "order reversed": {"column_order": "reversed"},
    "order random": {"column_order": "random"},
    "context line": {"context": True},
    "1 epoch": {"epochs": 1},  # no epoch to choose: every observed cell trained on, no held-out cells
    "per-cell": {"training": "per-cell"},  # the paper's one example per observed cell
    "unshaped numbers": {"numeric_shape": False},  # digit tokens only, any length (decoding version 1)
    "expected numbers": {"numeric_decoding": "expected"},  # weighted mean over the greedy answer + 32 quantiles
    "expected numbers (grid)": {"numeric_decoding": "expected-grid"},  # ... over the 32 quantiles only
}


def library_versions() -> dict[str, str | None]:
    """The installed versions of :data:`VERSIONED` (:func:`recllm.bench.reporting.library_versions`)."""
    from recllm.bench.reporting import library_versions as versions_of

    return versions_of(VERSIONED)


def base_imputer(name: str) -> str:
    """The registered imputer behind a unit's imputer name (a shared-fit reference's base, else the name)."""
    return SHARED_REFERENCES.get(name, name)


def peers_available() -> dict[str, bool]:
    """Peer imputer name -> whether its package (the ``peers`` extra) can be imported here (nothing is imported)."""
    import importlib.util

    from recllm.impute.peers import PEERS

    return {name: importlib.util.find_spec(module) is not None for name, (module, _) in PEERS.items()}


def skipped_line(name: str) -> str:
    """The report's line for a peer imputer whose package is missing."""
    from recllm.impute.peers import EXTRA, PEERS

    return (f"{name}: skipped -- {' and '.join(PEERS[name][1])} not installed (pip install 'recllm[{EXTRA}]' and "
            "rerun: stored runs are kept)")


def data_key(dataset: str) -> str:
    """sha256 of the data files behind ``dataset`` (part of every stored run's key)."""
    from recllm.data import data_files

    return data_sha256(data_files([dataset]))


def setting_name(setting: tuple[str, float]) -> str:
    return f"{setting[0].upper()} {int(round(setting[1] * 100))}%"


@dataclass
class BenchConfig:
    """What the benchmark runs. ``quick`` shrinks everything for development.

    LLM: ``llm_max_rows`` (None: every row, so every observed cell), ``llm_max_epochs`` (None: LLMImputer's own,
    ``DEFAULT_SFT.epochs``, chosen on held-out observed cells) and ``llm_max_validation_cells`` (None: its own) are
    the only departures from LLMImputer's defaults, named in the report. ``llm_fit``: "per-setting" (the default: one
    fine-tune per masked table, on every observed cell of it, as the other imputers are fitted) or "shared" (one per
    (table, seed) on the table with the cells of every setting's mask removed, reused to fill every setting: about
    a fifth of the fine-tuning, but it trains on the ~40% of cells no setting masks, and the MNAR mask among them
    leaves high values under-represented in every setting's training data). GReaT follows the same fit and the
    budget rule of :func:`recllm.bench.impute.budget.great_budget`: ``great_epochs`` passes over the rows (None: as
    many as the LLM imputer may train) or ``great_max_steps`` optimizer steps when > 0, at ``great_settings`` only
    (None: :data:`~recllm.bench.impute.budget.GREAT_SETTINGS`).
    """

    quick: bool = False
    datasets: tuple[str, ...] = ("advertising", "ml-100k")
    seeds: tuple[int, ...] = (0, 1, 2)
    settings: tuple[tuple[str, float], ...] = SETTINGS
    imputers: tuple[str, ...] = IMPUTER_ORDER
    llm_max_rows: int | None = None
    llm_max_epochs: int | None = None
    llm_max_validation_cells: int | None = None
    llm_model: str | None = None
    llm_fit: str = "per-setting"
    great_epochs: int | None = None
    great_max_steps: int = 0
    great_settings: tuple[tuple[str, float], ...] | None = None
    llm_settings: tuple[tuple[str, float], ...] | None = None
    attempts: tuple[str, ...] = ()  # names from ATTEMPTS to run (``ATTEMPT_DATASETS`` limits where)
    attempt_datasets: tuple[str, ...] | None = None  # default: every benchmark data set
    dlrm: dict[str, DLRMSettings] = field(default_factory=lambda: dict(DLRM_PRESETS))
    precision: str = "auto"  # the LLM imputer's: "auto" (the machine's) or pinned, e.g. float32 on every CPU

    def __post_init__(self) -> None:
        unknown = [d for d in (*self.datasets, *(self.attempt_datasets or ())) if d not in TABLES]
        if unknown:
            raise ValueError(f"unknown benchmark data set(s) {unknown}; choose from {sorted(TABLES)}")
        bad = [i for i in self.imputers if i not in IMPUTERS]
        if bad:
            raise ValueError(f"unknown imputer(s) {bad}; choose from {sorted(IMPUTERS)}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        for name in ("llm_max_rows", "llm_max_epochs", "llm_max_validation_cells", "great_epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.great_max_steps < 0:
            raise ValueError(f"great_max_steps must be >= 0, got {self.great_max_steps!r}")
        unknown = [a for a in self.attempts if a not in ATTEMPTS]
        if unknown:
            raise ValueError(f"unknown attempt(s) {unknown}; choose from {list(ATTEMPTS)}")
        from recllm.llm.precision import check_dtype

        check_dtype(self.precision, "precision")
        if self.llm_fit not in LLM_FITS:
            raise ValueError(f"llm_fit must be one of {LLM_FITS}, got {self.llm_fit!r}")
        known = {tuple(s) for s in self.settings}
        for name in ("great_settings", "llm_settings"):
            strays = [s for s in getattr(self, name) or () if tuple(s) not in known]
            if strays:
                raise ValueError(f"{name} {strays} are not among the benchmark's settings {list(self.settings)}")
        narrowed = self.llm_settings is not None and {tuple(s) for s in self.llm_settings} != known
        if self.llm_fit == "shared" and narrowed:
            raise ValueError("llm_settings narrows the settings only with llm_fit='per-setting': the shared fit "
                             "trains once for every setting (its table has every setting's cells removed)")

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> "BenchConfig":
        """The full preset, or the quick one (1 seed, MCAR 5% only, :data:`QUICK_LLM` budgets, short DLRM)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if quick:
            dlrm = dict(DLRM_PRESETS, **{"ml-100k": dataclasses.replace(DLRM_PRESETS["ml-100k"], max_epochs=3,
                                                                                   patience=1)})
            base = dict(quick=True, seeds=(0,), settings=(("mcar", 0.05),), great_settings=(("mcar", 0.05),),
                        llm_settings=(("mcar", 0.05),),
                        dlrm=dlrm, imputers=QUICK_IMPUTERS, **QUICK_LLM)
            base.update(overrides)
            return cls(**base)
        return cls(**overrides)

    def max_epochs(self) -> int:
        """The most epochs the LLM imputer trains (its default unless ``llm_max_epochs`` overrides it)."""
        from recllm.impute.llm import DEFAULT_SFT

        return self.llm_max_epochs or DEFAULT_SFT.epochs

    def llm_departures(self) -> dict[str, Any]:
        """LLMImputer's parameters the benchmark sets away from their defaults ({} in the full preset)."""
        out = dict(LLM_OVERRIDES)
        if self.llm_max_rows is not None:
            out["max_train_examples"] = self.llm_max_rows
        if self.llm_max_epochs is not None:
            out["max_epochs"] = self.llm_max_epochs
        if self.llm_max_validation_cells is not None:
            out["max_validation_cells"] = self.llm_max_validation_cells
        if self.precision != "auto":  # pinned: inference in it, and training autocast only for bfloat16
            out["dtype"] = self.precision
        return out

    def great_budget(self) -> GReaTBudget:
        """GReaT's budget under the benchmark's one rule (:func:`recllm.bench.impute.budget.great_budget`)."""
        return great_budget(self)

    def llm_run_settings(self) -> tuple[tuple[str, float], ...]:
        """Where the LLM imputer runs: ``llm_settings``; by default, with a fine-tune per masked table, GReaT's
        settings (:data:`~recllm.bench.impute.budget.GREAT_SETTINGS`: a fine-tune on every observed cell costs hours
        per table on a CPU), with the shared fit every setting (one fine-tune serves them all)."""
        every = tuple((str(m), float(r)) for m, r in self.settings)
        if self.llm_settings is not None:
            return tuple((str(m), float(r)) for m, r in self.llm_settings)
        if self.llm_fit == "shared":
            return every
        # GReaT's default settings, not its resolved ones: --great-all-settings must not widen the LLM's (and a
        # benchmark without them runs the LLM everywhere rather than nowhere)
        return tuple(s for s in every if s in set(GREAT_SETTINGS)) or every

    def runs(self, imputer: str, setting: tuple[str, float]) -> bool:
        """Whether ``imputer`` runs at ``setting``: every imputer does, except GReaT outside its budget's settings
        and the LLM imputer outside :meth:`llm_run_settings`."""
        if imputer == "great":
            return tuple(setting) in {tuple(s) for s in self.great_budget().settings}
        if imputer == "llm":
            return tuple(setting) in set(self.llm_run_settings())
        return True

    def shares_fit(self, imputer: str) -> bool:
        """Whether ``imputer`` is fitted once per (table, seed) on the union-masked table (``llm_fit="shared"``):
        the fine-tuned imputers and the shared-fit references."""
        return (imputer in FINE_TUNED or imputer in SHARED_REFERENCES) and self.llm_fit == "shared"

    def unit_imputers(self, imputers: tuple[str, ...]) -> tuple[str, ...]:
        """The imputers of the units: ``imputers`` plus, with the shared fit, the shared-fit reference of each of
        them that has one (right after it)."""
        out: list[str] = []
        for name in imputers:
            out.append(name)
            out += [ref for ref, base in SHARED_REFERENCES.items() if base == name and self.llm_fit == "shared"]
        return tuple(out)

    def llm_parts(self) -> dict[str, Any]:
        """The parts of the configuration that change an LLM-only attempt (no DLRM involved)."""
        return {"llm": self.llm_departures(), "llm_model": self.llm_model, "precision": self.resolved_precision()}

    def resolved_precision(self) -> dict[str, Any]:
        """What the LLM imputer computes in here: inference precision and training autocast (part of every LLM
        run's key, so runs made on CPUs with and without fast bfloat16 are never mixed in one table)."""
        from recllm.llm.precision import resolve_dtype, use_bf16_autocast

        return {"inference": resolve_dtype(self.precision, "cpu"),
                "autocast": use_bf16_autocast(self.training_autocast(), "cpu")}

    def training_autocast(self) -> bool | str:
        """The LLM imputer's ``SFTConfig.bf16``: "auto" (the machine's), else bfloat16 autocast only when pinned to
        bfloat16."""
        return "auto" if self.precision == "auto" else self.precision == "bfloat16"

    def cache_parts(self, imputer: str = "llm") -> dict[str, Any]:
        """The parts of the configuration that change a stored run of ``imputer`` (for the run key)."""
        parts: dict[str, Any] = {"dlrm": {k: dataclasses.asdict(v) for k, v in self.dlrm.items()},
                                 "versions": library_versions()}
        if imputer in SHARED_REFERENCES:
            parts.update(llm_fit=self.llm_fit, settings=[list(x) for x in self.settings])
        elif imputer == "llm":
            parts.update(self.llm_parts(), llm_fit=self.llm_fit,
                         settings=[list(x) for x in self.settings] if self.llm_fit == "shared" else None)
        elif imputer == "great":
            parts.update(great=self.great_budget().as_dict(), model=self.llm_model, fit=self.llm_fit,
                         settings=[list(x) for x in self.settings] if self.llm_fit == "shared" else None)
        return parts


# miceforest's mean matching draws a fill among the 5 observed cells whose predictions are nearest (or a category by
# its predicted probabilities): one random draw, for multiple imputation. Scored against point estimators (MICE's
# posterior mean, kNN, the LLM's argmax) it lost to mean imputation on ML-100K users (age nRMSE 1.21 vs 0.97); with
# 0 candidates it fills with the forest's prediction (most likely category): 0.90.
MICEFOREST_CANDIDATES = 0


def make_imputer(name: str, spec: TableSpec, seed: int, config: BenchConfig, base_lm: Any = None,
                 **llm_overrides: Any) -> BaseImputer:
    """The registered imputer ``name`` configured for table ``spec``: its defaults plus the benchmark's named
    departures (LLM: :meth:`BenchConfig.llm_departures`; GReaT: :meth:`BenchConfig.great_budget`) and the seed."""
    kinds = spec.imputer_kinds()
    name = base_imputer(name)
    if name == "mice":
        return IMPUTERS[name](seed=seed, **kinds)
    if name == "miceforest":  # point fills, as every other imputer here gives (its default draws a matched value)
        return IMPUTERS[name](seed=seed, mean_match_candidates=MICEFOREST_CANDIDATES, **kinds)
    if name == "great":
        # checkpoints in the recllm cache: a fine-tune of hours resumes where a session stopped it
        return IMPUTERS[name](model=base_lm if base_lm is not None else config.llm_model, seed=seed,
                              checkpoint_root="cache", **config.great_budget().imputer_params(), **kinds)
    if name != "llm":
        return IMPUTERS[name](**kinds)
    settings = config.llm_departures()
    epochs = llm_overrides.pop("epochs", None)
    if epochs is not None:
        settings["max_epochs"] = epochs
    if llm_overrides.pop("context", False):
        settings["context"] = spec.context
    settings.update(llm_overrides)
    if config.precision != "auto":
        from recllm.impute.llm import DEFAULT_SFT

        settings["sft"] = dataclasses.replace(DEFAULT_SFT, seed=seed, bf16=config.training_autocast())
    return IMPUTERS["llm"](model=base_lm if base_lm is not None else config.llm_model, seed=seed, **kinds, **settings)


def _llm_info(imputer: Any, fitted_here: bool) -> dict[str, Any]:
    """What a table's LLM fine-tune trained on and chose (from ``fit_report_``), for the report: ``fit_seconds``,
    ``fit_cpu``, ``fit_threads`` are the original fine-tune's (from its fit record, also for a reused adapter; None
    when the record predates them), never a reused adapter's load time."""
    fit = imputer.fit_report_
    return {"fit_seconds": fit.get("fit_seconds"), "fit_cpu": fit.get("fit_cpu"), "fit_threads": fit.get("fit_threads"),
            "load_seconds": fit["seconds"], "fitted_here": fitted_here,
            "adapter": getattr(imputer, "fingerprint_", None),
            "held_out": dict(getattr(imputer, "validation_", {}).get("cells", {})),
            "examples": fit["examples"], "train_cells": fit["cells_per_epoch"], "training": fit["training"],
            "max_epochs": fit["epochs"], "epochs_trained": fit["epochs_trained"], "chosen_epoch": fit["chosen_epoch"],
            "validation_cells": fit["validation_cells"], "validation_curve": list(fit["validation_curve"]),
            "adapter_reused": fit["adapter_reused"], "inference_dtype": fit["inference_dtype"],
            "transform_seconds": imputer.report_.seconds}


def masked_tables(ds: Any, dataset: str, setting: tuple[str, float], seed: int
                  ) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """table name -> (truth, masked, mask) for one setting and seed."""
    out = {}
    for spec in TABLES[dataset]:
        truth = feature_table(ds, spec)
        mechanism, rate = setting
        driver = spec.mar_driver if mechanism == "mar" else None
        masked, mask = inject_missing(truth, spec.masked, rate, mechanism, seed=seed, driver=driver)
        out[spec.name] = (truth, masked, mask)
    return out


def union_tables(ds: Any, dataset: str, settings: tuple[tuple[str, float], ...], seed: int) -> dict[str, pd.DataFrame]:
    """table name -> the table with the cells of *every* setting's mask removed (the shared LLM fine-tuning table)."""
    union: dict[str, pd.DataFrame] = {}
    for setting in settings:
        for name, (truth, _, mask) in masked_tables(ds, dataset, setting, seed).items():
            union[name] = mask if name not in union else union[name] | mask
    return {spec.name: feature_table(ds, spec).mask(union[spec.name]) for spec in TABLES[dataset]}


def impute_tables(name: str, dataset: str, tables: dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]],
                  seed: int, config: BenchConfig, base_lm: Any = None, shared: dict[str, Any] | None = None,
                  specs: list[TableSpec] | None = None, measure_fill: bool = True, **llm_overrides: Any
                  ) -> dict[str, Any]:
    """Fill every table of ``dataset`` with imputer ``name``: filled frames, scores on masked cells, timings; with
    ``measure_fill``, a fine-tuned imputer's fill is also measured against the peak (:mod:`.compute`).

    ``shared`` (LLM, GReaT, the shared-fit references): ``{"tables": union tables, "fitted": {table: imputer}}``;
    the imputer is fitted once on the union table of its (data set, seed) and reused to fill every setting's table.
    ``specs``: a subset of the data set's tables (default: all). Each table's info holds ``fit_cells``: per masked
    column, [cells observed in the table the imputer was fitted on, cells with a true value].
    """
    filled, scores, info = {}, {}, {}
    for spec in specs if specs is not None else TABLES[dataset]:
        truth, masked, mask = tables[spec.name]
        start = time.perf_counter()
        fitted_here = True
        overrides = dict(llm_overrides)
        scale = overrides.pop("rows_scale", None)
        if scale is not None:
            overrides["max_train_examples"] = max(1, int(round(len(masked) * scale)))
        if shared is not None and spec.name in shared["fitted"]:
            imputer, fitted_here = shared["fitted"][spec.name], False
        else:
            imputer = make_imputer(name, spec, seed, config, base_lm, **overrides)
            imputer.fit(shared["tables"][spec.name] if shared is not None else masked)
            if shared is not None:
                shared["fitted"][spec.name] = imputer
        fitted_on = shared["tables"][spec.name] if shared is not None else masked
        out = imputer.transform(masked)
        seconds = time.perf_counter() - start
        filled[spec.name] = out
        report = imputer.report_.as_dict()
        cell = {"seconds": seconds, "cells": report["cells_filled"], "rows_out": report["rows_out"],
                "fallbacks": sum(report["fallbacks"].values()), "how": report["how"],
                "code_columns": sorted(report["code_columns"]), "rows": len(masked),
                "fit_cells": {col: [int(fitted_on[col].notna().sum()), int(truth[col].notna().sum())]
                              for col in spec.masked}}
        if name == "llm":
            cell.update(_llm_info(imputer, fitted_here), shared_fit=shared is not None)
        elif name == "great":
            from recllm.impute.llm import fit_machine

            machine = fit_machine(imputer.fit_seconds_)
            cell.update(fit_seconds=machine["fit_seconds"], fit_cpu=machine["cpu"], fit_threads=machine["threads"],
                        fitted_here=fitted_here, shared_fit=shared is not None, train_steps=imputer.train_steps_,
                        transform_seconds=imputer.report_.seconds, sampled_rows=imputer.sampled_rows_,
                        samples=imputer.samples_, rows_given_up=imputer.rows_given_up_)
        if measure_fill and name in FINE_TUNED and report["cells_filled"]:
            from recllm.bench.impute.compute import guarded_fill_compute

            cell.update(guarded_fill_compute(imputer, masked, seed))  # after the record above: it fills again
        info[spec.name] = cell
        if imputer.fills_cells:
            scores[spec.name] = imputation_scores(spec, truth, out, mask, code_columns(spec, masked))
    return {"filled": filled, "scores": scores, "info": info}


def downstream(dataset: str, ds: Any, name: str, result: dict[str, Any] | None,
               tables: dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] | None, seed: int,
               config: BenchConfig) -> dict[str, dict[str, float]]:
    """DLRM metrics per task for one imputer's filled tables (``result=None``: the complete tables)."""
    from recllm.data.dataset import ITEM, USER

    split = split_rows(len(ds.interactions), SPLIT_FRACTIONS[dataset], seed)
    keep = None
    if result is None:
        inputs = {spec.name: feature_table(ds, spec) for spec in TABLES[dataset]}
    elif name == "deletion":
        inputs = {n: t[1] for n, t in tables.items()}  # masked tables: validation/test rows keep their gaps
        keep = np.ones(len(ds.interactions), dtype=bool)
        for spec in TABLES[dataset]:
            kept = result["filled"][spec.name].index
            column = USER if spec.key == USER else ITEM
            keep &= ds.interactions[column].isin(kept).to_numpy()
    else:
        inputs = result["filled"]
    return {task.name: run_task(task, ds, inputs, split, seed, config.dlrm[dataset], keep) for task in TASKS[dataset]}


def run_benchmark(config: BenchConfig, out: Any = None, show_progress: bool = True,
                  command: str = "recllm bench impute") -> int:
    """Run (or resume) the benchmark and write the report at ``out`` (a checked
    :class:`recllm.bench.reporting.ReportTarget`, or a path); returns a process exit code."""
    from recllm.bench.impute.report import write_imputation_report
    from recllm.bench.reporting import as_target
    from recllm.bench.runs import RunStore
    from recllm.data import load

    target = as_target(out, "imputation-quick.md" if config.quick else "imputation.md")
    store = RunStore(target.path.with_suffix(".runs.jsonl"))
    if show_progress and (len(store) or store.stale):
        print(f"resuming: {len(store)} finished runs stored in {store.path} ({store.stale} stale: their code "
              "changed)", flush=True)
    available = peers_available()
    imputers = tuple(i for i in config.imputers if available.get(i, True))
    skipped = [skipped_line(i) for i in config.imputers if not available.get(i, True)]
    for line in skipped if show_progress else ():
        print(line, flush=True)
    units = config.unit_imputers(imputers)
    rows: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    base_lm = None
    started = time.perf_counter()
    if "llm" in imputers or config.attempts:
        from recllm.llm.backbone import load_trainable_lm

        base_lm = load_trainable_lm(config.llm_model)  # each LLMImputer fine-tunes a copy of it

    failed: list[str] = []

    def done(dataset: str, seed: int, what: str) -> None:
        if show_progress:
            print(f"{dataset} seed {seed} {what}: done ({time.perf_counter() - started:.0f} s)", flush=True)

    def starting(dataset: str, seed: int, what: str, name: str) -> None:
        """A line before a unit that computes, so a long language-model fit is not silence."""
        if show_progress:
            slow = (" (fine-tunes a language model: tens of minutes on a CPU; resumes from its checkpoints in the "
                    "recllm cache if stopped)") if name in FINE_TUNED else ""
            print(f"{dataset} seed {seed} {what}: started{slow}", flush=True)

    def attempt(what: str, compute: Any) -> Any:
        """``compute()``, or None with a line in ``failed``: one unit's error (a peer library's, memory) does not
        stop the units after it; nothing of it is stored, so the next run tries it again."""
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 -- any unit's error is reported and the campaign goes on
            failed.append(f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip())
            print(f"recllm bench impute: {failed[-1]} (not stored; the next run tries it again)", flush=True)
            return None

    for dataset in config.datasets:
        ds = load(dataset)
        for seed in config.seeds:
            tables = {setting: masked_tables(ds, dataset, setting, seed) for setting in config.settings}
            union = (union_tables(ds, dataset, config.settings, seed)
                     if any(config.shares_fit(n) for n in units) else {})
            for setting in (("complete", 0.0), *config.settings):
                names = ("none",) if setting[0] == "complete" else [
                    n for n in units if config.runs(n, setting) and not config.shares_fit(n)]
                for name in names:
                    key = unit_key(dataset, seed, setting, name, config)
                    what = f"{setting_name(setting) if setting[0] != 'complete' else 'complete'} {name}"
                    row = store.get(key, UNIT_FIELDS)
                    if row is None:
                        starting(dataset, seed, what, name)

                        def compute(setting: tuple[str, float] = setting, name: str = name) -> dict[str, Any]:
                            masked = tables.get(setting)
                            result = None if name == "none" else impute_tables(
                                name, dataset, masked, seed, config, base_lm if name != "great" else None)
                            return unit_row(dataset, seed, setting, name, result,
                                            downstream(dataset, ds, name, result, masked, seed, config))
                        row = attempt(f"{dataset} seed {seed} {what}", compute)
                        if row is None:
                            continue
                        store.put(key, row)
                    rows.append(row)
                    done(dataset, seed, what)
            for name in (n for n in units if config.shares_fit(n)):
                if stored_group(store, [key for _, key in group_keys(name, dataset, seed, config)],
                                UNIT_FIELDS) is None:
                    starting(dataset, seed, f"{name} (shared fit, every setting)", name)
                group = attempt(f"{dataset} seed {seed} {name} (shared fit)", lambda name=name: run_shared_group(
                    name, dataset, ds, seed, config, tables, union, store, base_lm if name == "llm" else None))
                if group is not None:
                    rows += group
                    done(dataset, seed, f"{name} (shared fit, every setting)")
    if config.attempts:
        attempts = run_attempts(config, store, base_lm, show_progress)
    seconds = time.perf_counter() - started
    path = write_imputation_report(config, rows, attempts, seconds, target, command, imputers=imputers,
                                   skipped=skipped + [f"FAILED (not stored; a rerun tries it again): {line}"
                                                      for line in failed])
    if show_progress:
        print(f"wrote {path} ({seconds:.0f} s)")
    if failed:
        print(f"recllm bench impute: {len(failed)} unit(s) failed and are missing from {path.name}: "
              + "; ".join(failed), flush=True)
        return 1
    return 0


UNIT_FIELDS = ("dataset", "seed", "setting", "imputer", "tasks", "scores", "info", "versions")  # of every unit row


def unit_row(dataset: str, seed: int, setting: tuple[str, float], name: str, result: dict[str, Any] | None,
             tasks: dict[str, dict[str, float]], **extra: Any) -> dict[str, Any]:
    """The stored row of one unit (with the library versions it ran with): :data:`UNIT_FIELDS` and ``extra``."""
    return {"dataset": dataset, "seed": seed, "setting": list(setting), "imputer": name, "tasks": tasks,
            "scores": result["scores"] if result else {}, "info": result["info"] if result else {},
            "versions": library_versions(), **extra}


def group_keys(name: str, dataset: str, seed: int, config: BenchConfig) -> list[tuple[tuple[str, float], str]]:
    """(setting, unit key) of every setting a shared-fit imputer runs at for one (data set, seed)."""
    return [(s, unit_key(dataset, seed, s, name, config)) for s in config.settings if config.runs(name, s)]


def stored_group(store: Any, keys: list[str], required: tuple[str, ...] = ()) -> list[dict[str, Any]] | None:
    """The stored rows of a shared-fit group (one imputer's settings of a (data set, seed)) when every one of them
    is stored and all carry the same ``fit_group`` (one process's fit), else None: the group then reruns whole.
    ``required``: the fields each row must hold (see :meth:`recllm.bench.runs.RunStore.get`)."""
    rows = [store.get(key, required) for key in keys]
    if not rows or any(row is None for row in rows):
        return None
    groups = {row.get("fit_group") for row in rows}
    return rows if len(groups) == 1 and None not in groups else None


def run_shared_group(name: str, dataset: str, ds: Any, seed: int, config: BenchConfig,
                     tables: dict[tuple[str, float], dict[str, Any]], union: dict[str, pd.DataFrame], store: Any,
                     base_lm: Any = None) -> list[dict[str, Any]]:
    """One shared-fit imputer's (data set, seed), all or nothing: reused whole when :func:`stored_group` finds it,
    else fitted once on the union tables, every setting filled (and its DLRMs trained, except for the shared-fit
    references) in this process, and the rows stored together at the end under one ``fit_group``."""
    keyed = group_keys(name, dataset, seed, config)
    rows = stored_group(store, [key for _, key in keyed], UNIT_FIELDS)
    if rows is not None:
        return rows
    shared: dict[str, Any] = {"tables": union, "fitted": {}}
    group = uuid.uuid4().hex
    rows = []
    for setting, _ in keyed:
        result = impute_tables(name, dataset, tables[setting], seed, config, base_lm, shared)
        tasks = {} if name in SHARED_REFERENCES else downstream(dataset, ds, name, result, tables[setting], seed,
                                                                 config)
        rows.append(unit_row(dataset, seed, setting, name, result, tasks, fit_group=group))
    for (_, key), row in zip(keyed, rows):
        store.put(key, row)
    return rows


def unit_key(dataset: str, seed: int, setting: tuple[str, float] | list[Any], imputer: str,
             config: BenchConfig) -> str:
    """The run-store key of one unit: an imputer's (or "none": the complete tables') run on one masked setting."""
    return run_key(task="bench-impute", data=data_key(dataset), dataset=dataset, seed=seed, setting=list(setting),
                   imputer=imputer, config=config.cache_parts(imputer))


def run_attempts(config: BenchConfig, store: Any, base_lm: Any, show_progress: bool) -> list[dict[str, Any]]:
    """LLM imputer variants at MCAR 20% (seed of the first run), scored on the masked cells only."""
    from recllm.data import load

    setting, seed = ("mcar", 0.2), config.seeds[0]
    out = []
    runs = [(f"[{name}]", name, {}) for name in ("mean", "knn", "mice")]  # the classic imputers, for comparison
    runs += [(attempt, "llm", ATTEMPTS[attempt]) for attempt in config.attempts]
    for dataset in config.attempt_datasets or config.datasets:
        ds = load(dataset)
        tables = masked_tables(ds, dataset, setting, seed)
        for attempt, name, overrides in runs:
            key = run_key(task="bench-impute-attempt", data=data_key(dataset), dataset=dataset, seed=seed,
                          setting=list(setting), attempt=attempt, overrides=overrides, config=config.llm_parts(),
                          versions=library_versions())
            row = store.get(key)
            if row is None:
                try:
                    result = impute_tables(name, dataset, tables, seed, config, base_lm, measure_fill=False,
                                           **overrides)
                    row = {"dataset": dataset, "attempt": attempt, "scores": result["scores"], "info": result["info"],
                           "versions": library_versions()}
                except ValueError as err:  # e.g. complete-rows training with no complete row
                    row = {"dataset": dataset, "attempt": attempt, "error": str(err), "versions": library_versions()}
                store.put(key, row)
            out.append(row)
            if show_progress:
                print(f"attempt {dataset} {attempt}: done", flush=True)
    return out
