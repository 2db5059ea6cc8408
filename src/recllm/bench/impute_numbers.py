"""How the LLM imputer should decode numbers -> docs/results/imputation-numbers.md.

Greedy generation held to the column's number shape (LLMImputer's default) against the two expected-value
decodings (``numeric_decoding="expected"``: the probability-weighted mean over the greedy answer and 32 observed
quantiles of the column; ``"expected-grid"``: over the quantiles only), on the numeric columns of the imputation
benchmark's tables at MCAR 20%, with the benchmark's fine-tuning settings (the adapter of its "default" attempt),
over several seeds (mean ± 95% t-interval over seeds). Mean and MICE imputation are the reference.

The three decodings share one fine-tune per (data set, seed): the adapter and its epoch choice do not depend on the
decoding (LLMImputer chooses the epoch with :data:`recllm.impute.llm.VALIDATION_DECODING` and keys its adapter
without the decoding), and the three are one all-or-nothing group -- fitted and filled in one process, stored
together under one ``fit_group`` (:func:`recllm.bench.impute.run.stored_group`) -- so a later sitting on another
machine never pairs a decoding with a second fine-tune. The references are stored one by one. Every stored row and
key holds the library versions (:func:`recllm.bench.impute.run.library_versions`); runs are stored beside the report
(``imputation-numbers.runs.jsonl``), so a rerun costs little, on this machine or a fresh one.

Usage: ``recllm bench impute-numbers [--datasets advertising ml-100k] [--seeds 0 1 2] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

NAME = "impute-numbers"
DEFAULT_DATASETS = ["advertising", "ml-100k"]
SEEDS = (0, 1, 2)
DECODINGS = ("generate", "expected", "expected-grid")
REFERENCES = ("mean", "mice")
SETTING = ("mcar", 0.2)
FIT_FIELDS = ("training", "train_cells", "chosen_epoch", "epochs_trained", "validation_cells", "inference_dtype",
              "fit_seconds", "fit_cpu", "fit_threads", "adapter")


def measure(dataset: str, seed: int, store: Any = None, precision: str = "auto") -> dict[str, dict[str, Any]]:
    """imputer or decoding -> {"scores": {table: {metric: value}}, "seconds": fill seconds of the LLM, ...} for one
    seed. With a :class:`recllm.bench.runs.RunStore`, each reference is stored as it finishes and the decodings as
    one group when all three are done; both are reused while code, data, settings and library versions match, so
    the benchmark finishes over several sittings."""
    import json

    from recllm.bench.impute.run import BenchConfig, impute_tables, library_versions, masked_tables, stored_group
    from recllm.bench.runs import data_sha256, run_key
    from recllm.data import data_files, load

    config = BenchConfig(precision=precision)
    tables = masked_tables(load(dataset), dataset, SETTING, seed)
    data = data_sha256(data_files([dataset]))
    versions = library_versions()

    def key(name: str) -> str:
        return run_key(task="bench-impute-numbers", data=data, dataset=dataset, seed=seed, setting=list(SETTING),
                       name=name, config=config.cache_parts("llm" if name in DECODINGS else name), versions=versions)

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({**row, "versions": versions}, default=float))

    def decode(decoding: str) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from recllm.llm.cache import DiskCache

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # an empty answer cache: the seconds are this decoding's own
            result = impute_tables("llm", dataset, tables, seed, config, numeric_decoding=decoding, measure_fill=False,
                                   cache=DiskCache(Path(tmp) / "answers.sqlite"))
        print(f"[impute-numbers] {dataset} seed {seed} {decoding}: {time.perf_counter() - start:.0f} s", flush=True)
        return {"scores": result["scores"],
                "seconds": sum(i["transform_seconds"] for i in result["info"].values()),
                "cells": sum(i["cells"] for i in result["info"].values()),
                "fit": {table: {k: i.get(k) for k in FIT_FIELDS} for table, i in result["info"].items()}}

    out = {}
    for name in REFERENCES:
        row = store.get(key(name)) if store is not None else None
        if row is None:
            row = plain({"scores": impute_tables(name, dataset, tables, seed, config)["scores"], "seconds": None})
            if store is not None:
                store.put(key(name), row)
        out[name] = row
    keys = [key(d) for d in DECODINGS]
    rows = stored_group(store, keys) if store is not None else None
    if rows is None:  # all three in this process: the first fine-tunes, the others load its adapter
        group = uuid.uuid4().hex
        rows = [plain({**decode(d), "fit_group": group}) for d in DECODINGS]
        for k, row in zip(keys, rows) if store is not None else ():
            store.put(k, row)
    out.update(zip(DECODINGS, rows))
    return out


def _mean_ci(values: list[float], digits: int) -> tuple[float, str]:
    """(mean, "mean ± half-width") over seeds (:func:`recllm.eval.stats.interval_over_runs`, a t-interval)."""
    from recllm.eval.report import fmt_over_runs
    from recllm.eval.stats import interval_over_runs

    return interval_over_runs(values)[0], fmt_over_runs(values, digits)


def report_body(results: dict[str, dict[int, dict[str, dict[str, Any]]]]) -> str:
    """The nRMSE table (one row per numeric column: mean ± 95% t-interval over seeds), the fine-tunes (one per data
    set and seed) and the fill-time table. ``results``: data set -> seed -> :func:`measure`'s result."""
    from recllm.eval.report import format_table
    from recllm.bench.impute.tasks import TABLES

    names = [*REFERENCES, *DECODINGS]
    seeds = sorted({seed for by_seed in results.values() for seed in by_seed})
    rows = []
    for dataset, by_seed in results.items():
        for spec in TABLES[dataset]:
            for col in spec.numeric:
                metric = f"{col}:nrmse"
                if col not in spec.masked or any(metric not in r[n]["scores"].get(spec.name, {})
                                                 for r in by_seed.values() for n in names):
                    continue  # not masked, or a code column (scored by accuracy)
                row: dict[str, Any] = {"column": f"{spec.name}: {col}"}
                cells = {n: _mean_ci([r[n]["scores"][spec.name][metric] for r in by_seed.values()], 3)
                         for n in names}
                best = min(cells, key=lambda n: cells[n][0])
                for n in names:
                    row[n] = f"**{cells[n][1]}**" if n == best else cells[n][1]
                rows.append(row)
    cost = []
    for dataset, by_seed in results.items():
        for d in DECODINGS:
            seconds = [r[d]["seconds"] for r in by_seed.values()]
            cost.append({"data set": dataset, "decoding": d,
                         "cells filled (all columns, per seed)": by_seed[min(by_seed)][d]["cells"],
                         "fill seconds": _mean_ci(seconds, 0)[1]})
    over = (f"mean ± 95% t-interval over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else
            f"seed {seeds[0]} only (no interval)")
    return "\n".join([
        f"Masked-cell nRMSE (RMSE / standard deviation of the column's true values; lower is better, 1.0 is about "
        f"what the mean scores) at MCAR 20%, {over}. `generate`: greedy digits held to the column's number "
        "shape and range (the library default); `expected`: weighted mean over the greedy answer and 32 observed "
        "quantiles; `expected-grid`: over the quantiles only. Best mean per row in bold.",
        "",
        format_table(rows, ["column", *names]),
        "",
        "## The fine-tunes",
        "",
        "One fine-tune per data set, seed and table, shared by the three decodings: its epoch is chosen with the "
        "`generate` decoding whatever the decoding, so the adapter does not depend on it, and the three decodings "
        "of a seed are fitted and filled in one process and stored together. Fine-tune seconds are the fine-tune's "
        "own (from its fit record), with the CPU and threads that ran it.",
        "",
        format_table(_fit_rows(results), ["data set", "seed", "table", "fine-tune", "fine-tune s", "fitted on",
                                          "shared by the decodings"]),
        "",
        "## Cost",
        "",
        "Seconds to fill every masked cell of the data set's tables (categorical and text cells included, which "
        "every decoding fills the same way), over seeds; the expected decodings score 32-33 candidates per numeric "
        "cell. Each decoding fills with an empty answer cache (the fine-tuned adapter is shared), so each row is that "
        "decoding's own cost on the machine in the header.",
        "",
        format_table(cost, ["data set", "decoding", "cells filled (all columns, per seed)", "fill seconds"]),
    ])


def _fit_rows(results: dict[str, dict[int, dict[str, dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per (data set, seed, table): what its one adapter trained on, as the first decoding recorded it, and
    whether the three decodings recorded the same adapter."""
    out = []
    for dataset, by_seed in results.items():
        for seed, by_name in sorted(by_seed.items()):
            for table, fit in (by_name[DECODINGS[0]].get("fit") or {}).items():
                adapters = {(by_name[d].get("fit") or {}).get(table, {}).get("adapter") for d in DECODINGS}
                seconds = fit.get("fit_seconds")
                out.append({
                    "data set": dataset, "seed": seed, "table": table,
                    "fine-tune": f"{fit['training']} SFT on {fit['train_cells']} observed cells per epoch, epoch "
                                 f"{fit['chosen_epoch']} of {fit['epochs_trained']} chosen on "
                                 f"{fit['validation_cells']} held-out observed cells, filled in "
                                 f"{fit['inference_dtype']}",
                    "fine-tune s": "not recorded" if seconds is None else f"{seconds:.0f}",
                    "fitted on": f"{fit['fit_cpu']}, {fit.get('fit_threads')} thread(s)" if fit.get("fit_cpu")
                                 else "not recorded",
                    "shared by the decodings": "yes (one adapter)" if len(adapters) == 1 and None not in adapters
                                               else "NO: the decodings recorded different adapters"})
    return out


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.impute.tasks import TABLES
    from recllm.data import data_files
    from recllm.errors import UserInputError
    from recllm.eval.report import write_report
    from recllm.llm.precision import describe_precision
    from recllm.utils import set_threads

    unknown = sorted(set(args.datasets) - set(TABLES))
    if unknown:
        raise UserInputError(f"unknown data set(s) {unknown}", "--datasets", f"choose from {', '.join(TABLES)}")
    from recllm.llm.precision import check_dtype

    check_dtype(args.precision, "--precision")
    from recllm.bench.runs import RunStore
    from recllm.cli_args import fetch_data

    fetch_data(args.datasets)
    set_threads(args.threads)
    target = args.report
    store = RunStore(target.path.with_suffix(".runs.jsonl"))
    seeds = list(args.seeds or SEEDS)
    results = {dataset: {seed: measure(dataset, seed, store, args.precision) for seed in seeds}
               for dataset in args.datasets}
    write_report(target.path, "LLM imputer: how to decode numbers", args.command, data_files(args.datasets),
                 report_body(results), seeds=seeds, commit=target.commit,
                 precision=describe_precision(args.precision), overwrite=target.overwrite)
    print(f"[impute-numbers] wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench impute-numbers``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import seed_arg, thread_count

    b = bench.add_parser(NAME, help="how the LLM imputer should decode numbers -> docs/results/imputation-numbers.md")
    b.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=None,
                   help=f"seeds, each stored on its own (default: {' '.join(map(str, SEEDS))})")
    b.add_argument("--precision", default="auto",
                   help="the LLM imputer's precision: auto (the machine's) or a named one; float32 makes the runs of "
                   "CPUs with and without fast bfloat16 the same runs, for a report finished over sittings")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    add_report_args(b, "imputation-numbers.md", _run, stores=(".runs.jsonl",))

