"""How the LLM imputer should decode numbers -> docs/results/imputation-numbers.md.

Greedy generation held to the column's number shape (LLMImputer's default) against the two expected-value
decodings (``numeric_decoding="expected"``: the probability-weighted mean over the greedy answer and 32 observed
quantiles of the column; ``"expected-grid"``: over the quantiles only), on the numeric columns of the imputation
benchmark's tables at MCAR 20%, with the benchmark's fine-tuning settings (the adapter of its "default" attempt).
Mean and MICE imputation are the reference. Adapters and answers are cached on the machine, and each finished
decoding is stored beside the report (``imputation-numbers.runs.jsonl``), so a rerun costs little, on this machine or
a fresh one.

Usage: ``recllm bench impute-numbers [--datasets advertising ml-100k] [--seed 0] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

NAME = "impute-numbers"
DEFAULT_DATASETS = ["advertising", "ml-100k"]
DECODINGS = ("generate", "expected", "expected-grid")
REFERENCES = ("mean", "mice")
SETTING = ("mcar", 0.2)


def measure(dataset: str, seed: int, store: Any = None, precision: str = "auto") -> dict[str, dict[str, Any]]:
    """imputer or decoding -> {"scores": {table: {metric: value}}, "seconds": fill seconds of the LLM}. With a
    :class:`recllm.bench.runs.RunStore`, each is stored as it finishes and reused while code, data and settings
    match, so the benchmark finishes over several sittings."""
    import json

    from recllm.bench.impute.run import BenchConfig, impute_tables, masked_tables
    from recllm.bench.runs import data_sha256, run_key
    from recllm.data import data_files, load

    config = BenchConfig(precision=precision)
    tables = masked_tables(load(dataset), dataset, SETTING, seed)
    data = data_sha256(data_files([dataset]))

    def stored(name: str, compute: Any) -> dict[str, Any]:
        key = run_key(task="bench-impute-numbers", data=data, dataset=dataset, seed=seed, setting=list(SETTING),
                      name=name, config=config.cache_parts("llm" if name in DECODINGS else name))
        row = store.get(key) if store is not None else None
        if row is None:
            row = json.loads(json.dumps(compute(), default=float))
            if store is not None:
                store.put(key, row)
        return row

    def decode(decoding: str) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from recllm.llm.cache import DiskCache

        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # an empty answer cache: the seconds are this decoding's own
            result = impute_tables("llm", dataset, tables, seed, config, numeric_decoding=decoding,
                                   cache=DiskCache(Path(tmp) / "answers.sqlite"))
        print(f"[impute-numbers] {dataset} {decoding}: {time.perf_counter() - start:.0f} s", flush=True)
        return {"scores": result["scores"],
                "seconds": sum(i["transform_seconds"] for i in result["info"].values()),
                "cells": sum(i["cells"] for i in result["info"].values()),
                "fit": {table: {k: i.get(k) for k in ("training", "train_cells", "chosen_epoch", "epochs_trained",
                                                       "validation_cells", "inference_dtype")}
                        for table, i in result["info"].items()}}

    out = {}
    for name in REFERENCES:
        out[name] = stored(name, lambda name=name: {
            "scores": impute_tables(name, dataset, tables, seed, config)["scores"], "seconds": None})
    for decoding in DECODINGS:
        out[decoding] = stored(decoding, lambda decoding=decoding: decode(decoding))
    return out


def report_body(results: dict[str, dict[str, dict[str, Any]]], seed: int) -> str:
    """The nRMSE table (one row per numeric column) and the fill-time table."""
    from recllm.eval.report import format_table
    from recllm.bench.impute.tasks import TABLES

    names = [*REFERENCES, *DECODINGS]
    rows = []
    for dataset, by_name in results.items():
        for spec in TABLES[dataset]:
            for col in spec.numeric:
                if col not in spec.masked:
                    continue
                row: dict[str, Any] = {"column": f"{spec.name}: {col}"}
                values = {n: by_name[n]["scores"][spec.name][f"{col}:nrmse"] for n in names}
                best = min(values, key=values.get)
                for n in names:
                    row[n] = f"**{values[n]:.3f}**" if n == best else f"{values[n]:.3f}"
                rows.append(row)
    cost = [{"data set": dataset, "decoding": d, "cells filled (all columns)": by_name[d]["cells"],
             "fill seconds": f"{by_name[d]['seconds']:.0f}"} for dataset, by_name in results.items() for d in DECODINGS]
    return "\n".join([
        f"Masked-cell nRMSE (RMSE / standard deviation of the column's true values; lower is better, 1.0 is about "
        f"what the mean scores) at MCAR 20%, seed {seed}. `generate`: greedy digits held to the column's number "
        "shape and range (the library default); `expected`: weighted mean over the greedy answer and 32 observed "
        "quantiles; `expected-grid`: over the quantiles only. The same fine-tuned adapter for the three (the "
        f"imputation benchmark's settings): {_fits(results)}. Best per row in bold.",
        "",
        format_table(rows, ["column", *names]),
        "",
        "## Cost",
        "",
        "Seconds to fill every masked cell of the data set's tables (categorical and text cells included, which "
        "every decoding fills the same way); the expected decodings score 32-33 candidates per numeric cell. "
        "Each decoding fills with an empty answer cache (the fine-tuned adapter is shared), so each row is that "
        "decoding's own cost on the machine in the header.",
        "",
        format_table(cost, ["data set", "decoding", "cells filled (all columns)", "fill seconds"]),
    ])


def _fits(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """What each table's adapter trained on, as the first decoding recorded it."""
    parts = []
    for by_name in results.values():
        for table, fit in (by_name[DECODINGS[0]].get("fit") or {}).items():
            parts.append(f"{table}: {fit['training']} SFT on {fit['train_cells']} observed cells per epoch, epoch "
                         f"{fit['chosen_epoch']} of {fit['epochs_trained']} chosen on {fit['validation_cells']} "
                         f"held-out observed cells, filled in {fit['inference_dtype']}")
    return "; ".join(parts) or "not recorded"


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

    set_threads(args.threads)
    target = args.report
    store = RunStore(target.path.with_suffix(".runs.jsonl"))
    results = {dataset: measure(dataset, args.seed, store, args.precision) for dataset in args.datasets}
    write_report(target.path, "LLM imputer: how to decode numbers", args.command, data_files(args.datasets),
                 report_body(results, args.seed), seeds=[args.seed], commit=target.commit,
                 precision=describe_precision(args.precision))
    print(f"[impute-numbers] wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench impute-numbers``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import non_negative_int, seed_arg

    b = bench.add_parser(NAME, help="how the LLM imputer should decode numbers -> docs/results/imputation-numbers.md")
    b.add_argument("--datasets", nargs="*", default=DEFAULT_DATASETS)
    b.add_argument("--seed", type=seed_arg, default=0)
    b.add_argument("--precision", default="auto",
                   help="the LLM imputer's precision: auto (the machine's) or a named one; float32 makes the runs of "
                   "CPUs with and without fast bfloat16 the same runs, for a report finished over sittings")
    b.add_argument("--threads", type=non_negative_int, default=0, help="torch / BLAS threads (0: library default)")
    add_report_args(b, "imputation-numbers.md", _run)

