"""``recllm impute``: fill the gaps of a CSV / parquet table (its benchmark is :mod:`recllm.bench.impute`).

``--engine ray`` sends the LLM imputer's fills to a Ray actor pool. Under ``torchrun`` the LLM fine-tune is
data-parallel on every rank; rank 0 alone then fills the table and writes the outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from recllm.data.dataset import DataError
from recllm.errors import UserInputError


LLM_OPTIONS = ("--model", "--examples", "--epochs", "--lr", "--train-on", "--numbers")  # None unless given


def _markers(text: str | None, whole: list[str] | None = None) -> tuple[str, ...]:
    """The gap markers (a cell must equal one to be a gap). ``text``, from --na-values: split at commas, the spaces
    just after a comma dropped (``NA, ?`` is NA and ?), every other space part of a marker, so ``' NA'`` never makes a
    bare NA a gap. ``whole``, from each --na-value: one marker as given, commas included. A marker with spaces
    around it is named on stderr."""
    import re

    for option, value in (("--na-values", text), *(("--na-value", m) for m in whole or ())):
        if value is not None and not isinstance(value, str):  # argparse drops a lone '--' value: [] arrives
            raise UserInputError(f"{option}=-- reached recllm empty (argparse drops a '--' value)", option,
                                 "write it --na-values=--, (the trailing comma keeps it)")
    markers: tuple[str, ...] = ()
    if text:
        markers = tuple(m for m in re.split(r",[ \t]*", text) if m != "")
        if not markers:
            raise UserInputError(f"--na-values {text!r} names no marker", "--na-values",
                                 "give the strings that mark a gap, separated by commas (e.g. 'NA,?'); a marker "
                                 "holding a comma goes to --na-value (e.g. --na-value ',')")
    for marker in whole or ():
        if marker == "":
            raise UserInputError("--na-value '' is the empty cell, which is always a gap", "--na-value",
                                 "drop it, or give the string that marks a gap")
    markers = tuple(dict.fromkeys(markers + tuple(whole or ())))
    if not markers:
        return ()
    spaced = [m for m in markers if m != m.strip()]
    if spaced:
        print(f"recllm impute: note: gap marker{'s' if len(spaced) > 1 else ''} "
              f"{', '.join(repr(m) for m in spaced)} taken as written, spaces included (a cell must equal it)",
              file=sys.stderr)
    return markers


def _check_args(args: argparse.Namespace) -> tuple[Path, Path, Path | None, Any]:
    """Input, output and report paths and the CSV format, checked before any work (nothing is created)."""
    from recllm.impute.table_io import OUTPUT_SUFFIXES, CsvFormat, table_kind
    from recllm.outputs import check_output_file

    table = Path(args.table)
    if table.is_dir():
        raise DataError("this is a folder, not a table file", str(table), "give a .csv or .parquet file")
    if table.suffix.lower() == ".tsv":
        raise DataError("unknown table format '.tsv'", str(table),
                        "rename it to .csv and pass --sep '\\t' (a tab-separated file is read as a CSV)")
    table_kind(table)
    if table.exists() and not table.is_file():
        raise DataError("not a regular file (a device, a pipe or a socket)", str(table),
                        "give a .csv or .parquet file saved on disk")
    if not table.is_file():
        raise DataError("no such file", str(table), "check the input table's path")
    out = check_output_file(args.out, OUTPUT_SUFFIXES, overwrite=args.overwrite)
    report = check_output_file(args.report, (".json",), overwrite=args.overwrite, option="--report") \
        if args.report is not None else None  # --report '' is refused there, not taken as "no report"
    if out.resolve() == table.resolve():
        raise UserInputError("--out is the input table", str(out), "write the filled table to a new file")
    if report is not None and report.resolve() in (out.resolve(), table.resolve()):
        raise UserInputError("--report is the input or output table", str(report), "give the report its own .json file")
    fmt = CsvFormat(sep=args.sep, encoding=args.encoding, na_values=_markers(args.na_values, args.na_value))
    given = [option for option in LLM_OPTIONS if getattr(args, option[2:].replace("-", "_")) is not None]
    given += [f"--engine {args.engine}"] if args.engine != "local" else []
    if given and args.method != "llm":
        names = [option.split()[0] for option in given]
        raise UserInputError(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to LLM fills, and "
                             f"--method {args.method} has none", names[0],
                             f"use --method llm, or drop {' '.join(names)}")
    return table, out, report, fmt


def _imputer(args: argparse.Namespace):
    """The imputer ``--method`` names, configured (not yet told the column kinds)."""
    from recllm.impute.registry import make_imputer

    from recllm.cli_args import check_model, config_errors, engine_options

    options: dict[str, Any] = {}
    if args.method == "llm":
        import dataclasses

        from recllm.impute.llm import DEFAULT_SFT

        with config_errors():  # LLMImputer's fine-tuning defaults, with what the command line sets explicitly
            sft = dataclasses.replace(DEFAULT_SFT, seed=args.seed, show_progress=not args.quiet,
                                      **({"learning_rate": args.lr} if args.lr is not None else {}))
        options.update(model=check_model(args.model), seed=args.seed, max_train_examples=args.examples,
                       max_epochs=args.epochs, show_progress=not args.quiet, sft=sft,
                       **{k: v for k, v in (("train_on", args.train_on), ("numeric_decoding", args.numbers))
                          if v is not None})  # LLMImputer's defaults otherwise
        ray = engine_options(args)  # --engine ray: Ray Data must be installed
        if ray is not None:
            options.update(engine=args.engine, ray_options=ray)
    elif args.method in ("mice", "miceforest", "great"):  # seeded: MICE's and miceforest's draws, GReaT's
        options["seed"] = args.seed  # training (HF Trainer seed / data_seed) and sampling (torch, numpy, random)
    return make_imputer(args.method, **options)


def _impute(args: argparse.Namespace) -> int:
    from recllm.impute.table_io import (check_output_fits, declare_kinds, option_columns, read_cells, type_table,
                                        write_table)

    path, out, report_path, fmt = _check_args(args)  # errors: one line from recllm.cli.main, exit 2
    imputer = _imputer(args)
    from recllm.utils import set_threads

    set_threads(args.threads)
    table = read_cells(path, fmt)
    kinds = {k: option_columns(getattr(args, k), table.frame.columns) for k in ("categorical", "numeric", "text")}
    type_table(table, **kinds)
    check_output_fits(table, out, kinds["numeric"])
    start = time.perf_counter()
    try:
        declare_kinds(imputer, table, **kinds)
        imputer.fit(table.frame)  # under torchrun: every rank fine-tunes its share of each batch (DDP)
    except DataError as exc:  # the estimator does not know the file: name it
        if exc.where is not None:
            raise
        raise DataError(exc.what, str(path), exc.todo) from None
    from recllm.distributed.ddp import is_main_process

    if not is_main_process():  # every rank holds the same adapter; rank 0 fills and writes, once
        return 0
    filled = imputer.transform(table.frame)
    write_table(table, filled, out, replace=args.overwrite)  # not over a file that appeared meanwhile
    report = imputer.report_.as_dict()
    report.update({"input": str(args.table), "output": str(args.out),
                   "seconds_total": round(time.perf_counter() - start, 3), "column_kinds": imputer.kinds_})
    if args.method == "llm":
        report["fine_tuning"] = imputer.fit_report_
    print(f"{args.table}: {report['rows_in']} rows -> {args.out}: {report['rows_out']} rows; "
          f"{report['cells_filled']} cells filled by {args.method} in {report['seconds_total']:.1f} s")
    for col, n in report["filled"].items():
        fallback = report["fallbacks"].get(col, 0)
        extra = f" ({fallback} fell back to the column statistic)" if fallback else ""
        print(f"  {col} ({imputer.kinds_[col]}): {n} filled{extra}")
    if report["how"]:
        print("  how: " + ", ".join(f"{k} {v}" for k, v in report["how"].items()))
    report["notes"] = list(table.notes) + list(report["notes"])
    for note in report["notes"]:
        print(f"  note: {note}")
    if args.report:
        from recllm.utils import write_json_atomic

        write_json_atomic(report_path, report, replace=args.overwrite)
    return 0


def register_cli(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``recllm impute`` (``bench`` is unused: benchmarks register in :mod:`recllm.bench`)."""
    from recllm.cli_args import add_engine_args, positive_float, positive_int, seed_arg, thread_count
    from recllm.impute.names import IMPUTER_NAMES

    p = sub.add_parser("impute", help="fill the missing cells of a CSV / parquet table")
    p.add_argument("table", help="input table (.csv or .parquet)")
    p.add_argument("--method", default="mice", choices=sorted(IMPUTER_NAMES))
    p.add_argument("--out", required=True, help="output table (.csv or .parquet), written atomically; observed cells "
                   "are written as read")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out / --report file")
    p.add_argument("--sep", default=",", help="CSV separator, one character ('\\t' for a tab; default ',')")
    p.add_argument("--encoding", default="utf-8", help="CSV encoding (default utf-8; e.g. latin-1, cp1252)")
    p.add_argument("--na-values", default=None,
                   help="comma-separated strings that mark a gap besides an empty cell (spaces after a comma are "
                        "ignored, any other space is part of a marker; default: none; NA, null, NaN ... are values)")
    p.add_argument("--na-value", action="append", default=None, metavar="MARKER",
                   help="one string that marks a gap, taken whole (a comma or spaces included); repeatable; adds to "
                        "--na-values")
    p.add_argument("--categorical", help="comma-separated columns to treat as categorical, read as text "
                   "(default: inferred); a column's whole name, spaces and commas included, is taken as it is")
    p.add_argument("--numeric", help="comma-separated numeric columns, named as for --categorical (default: "
                   "inferred); in a parquet output a column of integers is int64 (exact), any other float64 (15 "
                   "significant digits)")
    p.add_argument("--text", help="comma-separated free-text columns, named as for --categorical (default: "
                   "inferred)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the random methods (mice, miceforest, great, llm): the same seed, the same fills")
    p.add_argument("--model", default=None, help="llm: HF model id or folder (default: the bundled SmolLM2-135M)")
    p.add_argument("--examples", type=positive_int, default=None,
                   help="llm: at most this many training rows (seeded sample; default: every row with an observed "
                        "cell, as LLMImputer does)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="llm: most fine-tuning epochs (default: LLMImputer's, recllm.impute.llm.DEFAULT_SFT)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="llm: LoRA learning rate (default: LLMImputer's, recllm.impute.llm.DEFAULT_SFT)")
    p.add_argument("--train-on", default=None, choices=("observed", "complete_rows"),
                   help="llm: learn every observed cell (default), or only the cells of complete rows")
    p.add_argument("--numbers", default=None, choices=("generate", "expected", "expected-grid"),
                   help="llm: numeric cells by shape-constrained generation (default), or as the probability-weighted "
                        "mean over the generated answer and 32 observed quantiles of the column (expected), or over "
                        "the quantiles only (expected-grid: lower RMSE when the model is unsure)")
    p.add_argument("--report", help="also write the fill report as JSON here (.json)")
    add_engine_args(p, "the LLM imputer's fills (--method llm: cell scoring, number and text generation)")
    p.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_impute)
