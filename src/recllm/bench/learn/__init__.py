"""``recllm bench learn``: LEARN against popularity, SASRec (CE and BCE) and HSTU -> docs/results/learn.md.

The protocol and the compared models are in :mod:`recllm.bench.learn.run`, the content encoders and their
embedding times in :mod:`recllm.bench.learn.content`, the report in :mod:`recllm.bench.learn.report`, ``--plan``
in :mod:`recllm.bench.learn.plan`, RecBole's SASRec beside ours in :mod:`recllm.bench.learn.recbole_ref`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "learn"


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.learn.run import (DEFAULT_PATIENCE, FULL_DATASETS, QUICK_DATASETS, SPLITS, model_specs,
                                        no_data_error, run_benchmark)
    from recllm.cli_args import check_data_source, check_input_dir, fetch_data
    from recllm.errors import UserInputError
    from recllm.utils import set_threads

    for name in args.datasets or ():
        check_data_source(name, "--datasets")
    if not args.plan:  # a plot of the same name that recllm did not make: refused now, not after the runs
        from recllm.bench.learn.report import plot_path
        from recllm.outputs import check_plot_files

        check_plot_files((plot_path(args.report.path, name)
                          for name in args.datasets or (QUICK_DATASETS if args.quick else FULL_DATASETS)),
                         args.overwrite)
        from recllm.bench.learn.recbole_ref import check_reference_store

        check_reference_store(Path(args.report.path).with_suffix(".recbole.json"), args.overwrite)
    if args.datasets:  # a data set named on the command line is run or refused, never skipped
        fetch_data(args.datasets)
    elif not fetch_data(defaults := list(QUICK_DATASETS if args.quick else FULL_DATASETS), skip_missing=True):
        raise no_data_error(defaults)  # the defaults that are absent are skipped, with a note; all absent: no report
    unknown = sorted(set(args.splits or ()) - set(SPLITS))
    if unknown:
        raise UserInputError(f"unknown split(s) {unknown}", "--splits", f"choose from {', '.join(SPLITS)}")
    patience = args.patience or DEFAULT_PATIENCE
    names = [spec.name for spec in model_specs(args.quick, patience)]
    unknown = sorted(set(args.models or ()) - set(names))
    if unknown:
        raise UserInputError(f"unknown model(s) {unknown}", "--models", f"choose from {', '.join(map(repr, names))}")
    recbole_run = None
    if args.recbole_run:  # the checked folder (~ expanded) is the one read
        recbole_run = str(check_input_dir(args.recbole_run, "--recbole-run", "RecBole run",
                                          todo="give the folder made by `make recbole-reference`"))
    set_threads(args.threads)
    if args.plan:  # args.report: the report's path, unchecked (recllm.bench.reporting.add_report_args)
        from recllm.bench.learn.plan import plan_benchmark

        plan_benchmark(args.report, quick=args.quick, datasets=args.datasets, splits=args.splits, seeds=args.seeds,
                       models=args.models, epochs=args.epochs, patience=patience)
        return 0
    return run_benchmark(quick=args.quick, datasets=args.datasets, splits=args.splits, seeds=args.seeds,
                         models=args.models, out=args.report, epochs=args.epochs, recbole_run=recbole_run,
                         patience=patience, fresh=args.fresh, show_progress=not args.quiet)


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench learn``."""
    from recllm.bench.reporting import add_report_args
    from recllm.bench.learn.stopping import DEFAULT_PATIENCE, FULL_EPOCHS, QUICK_EPOCHS
    from recllm.cli_args import positive_int, seed_arg, thread_count

    b = bench.add_parser(NAME, help="LEARN vs popularity, SASRec, HSTU -> docs/results/learn.md")
    b.add_argument("--quick", action="store_true", help="one data set, one seed, few epochs")
    b.add_argument("--datasets", nargs="*", default=None,
                   help="data sets of `recllm data list`, or data folders of your own files (see `recllm data info "
                        "--help`)")
    b.add_argument("--splits", nargs="*", default=None)
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=None)
    b.add_argument("--models", nargs="*", default=None, help="model names as in the report (default: all)")
    b.add_argument("--epochs", type=positive_int, default=None, help=f"cap on epochs per model (default: {QUICK_EPOCHS} quick, {FULL_EPOCHS} full)")
    b.add_argument("--recbole-run", default=None,
                   help="RecBole reference run folder made by `make recbole-reference` (default runs/recbole_reference)")
    b.add_argument("--patience", type=positive_int, default=None,
                   help=f"early-stopping patience (epochs) of the sequential models (default {DEFAULT_PATIENCE})")
    b.add_argument("--fresh", action="store_true",
                   help="refit every run (default: reuse the stored runs whose code, data and settings match)")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    b.add_argument("--plan", action="store_true",
                   help="list every run (stored or not) with its estimated minutes on this machine, fit nothing")
    add_report_args(b, "learn.md", _run, stores=(".runs.jsonl", ".content.jsonl"))


if __name__ == "__main__":
    import sys

    from recllm.bench import main

    sys.exit(main(NAME))
