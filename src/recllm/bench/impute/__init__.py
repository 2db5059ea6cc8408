"""``recllm bench impute``: every imputer x task x missingness setting x seed -> docs/results/imputation.md.

The protocol is in :mod:`recllm.bench.impute.run`, the feature tables and DLRM tasks in
:mod:`recllm.bench.impute.tasks`, the report in :mod:`recllm.bench.impute.report`.
"""

from __future__ import annotations

import argparse

NAME = "impute"


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from recllm.bench.impute.run import ATTEMPTS, IMPUTERS, TABLES, BenchConfig, run_benchmark
    from recllm.cli_args import check_choices, check_model, config_errors, fetch_data
    from recllm.llm.precision import check_dtype
    from recllm.utils import set_threads

    # names checked here, each naming its option (BenchConfig's own ValueError cannot say which option it came from)
    for given, known, what, option in ((args.datasets, TABLES, "benchmark data set(s)", "--datasets"),
                                       (args.attempt_datasets, TABLES, "benchmark data set(s)", "--attempt-datasets"),
                                       (args.imputers, IMPUTERS, "imputer(s)", "--imputers"),
                                       (args.attempts, ATTEMPTS, "attempt(s)", "--attempts")):
        check_choices(given, known, what, option)
    if args.precision is not None:  # a wrong name: one line naming the option
        check_dtype(args.precision, "--precision")
    check_model(args.model)  # a --model folder that does not exist: one line, before any work
    with config_errors():
        config = BenchConfig.preset(
            args.quick, datasets=tuple(args.datasets) if args.datasets else None,
            seeds=tuple(args.seeds) if args.seeds else None, imputers=tuple(args.imputers) if args.imputers else None,
            llm_max_rows=args.max_rows, llm_max_epochs=args.epochs, llm_model=args.model,
            great_epochs=args.great_epochs,
            attempts=tuple(ATTEMPTS) if args.attempts == [] else tuple(args.attempts or ()),
            attempt_datasets=tuple(args.attempt_datasets) if args.attempt_datasets else None,
            llm_fit=args.llm_fit, precision=args.precision,
        )
        if args.great_all_settings:
            config = dataclasses.replace(config, great_settings=config.settings)
        if args.llm_all_settings:
            config = dataclasses.replace(config, llm_settings=config.settings)
    if not args.plan:  # a plot of the same name that recllm did not make: refused now, not after the runs
        from recllm.bench.impute.report import plot_paths
        from recllm.outputs import check_plot_files

        check_plot_files(plot_paths(args.report.path), args.overwrite)
    fetch_data([*config.datasets, *(config.attempt_datasets or ())])  # before the language model loads
    set_threads(args.threads)
    if args.plan:
        from recllm.bench.impute.plan import plan_benchmark

        return plan_benchmark(config, out=args.report, show_progress=not args.quiet)
    return run_benchmark(config, out=args.report, show_progress=not args.quiet, command=args.command)


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench impute``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import positive_int, seed_arg, thread_count
    from recllm.impute.names import IMPUTER_NAMES

    b = bench.add_parser(NAME, help="imputers x tasks x missingness x seeds -> docs/results/imputation.md")
    b.add_argument("--quick", action="store_true",
                   help="1 seed, MCAR 5%% only, small budgets, GReaT only if --imputers names it (development)")
    b.add_argument("--datasets", nargs="*", default=None, help="advertising and/or ml-100k")
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=None)
    b.add_argument("--imputers", nargs="*", default=None, help=f"subset of {list(IMPUTER_NAMES)}")
    b.add_argument("--max-rows", type=positive_int, default=None,
                   help="LLM: train on a seeded sample of this many rows per table (default: every row, every "
                   "observed cell; the report names the departure)")
    b.add_argument("--epochs", type=positive_int, default=None,
                   help="LLM: the most fine-tuning epochs, chosen on held-out cells (default: LLMImputer's own)")
    b.add_argument("--great-epochs", type=positive_int, default=None,
                   help="GReaT: epochs over the rows (default: as many as the LLM imputer may train)")
    b.add_argument("--great-all-settings", action="store_true",
                   help="GReaT at every setting (default: MCAR 20%% only, by the budget rule of "
                   "recllm.bench.impute.budget; every setting takes several times as long)")
    b.add_argument("--llm-all-settings", action="store_true",
                   help="the LLM imputer at every setting (default: where GReaT runs, MCAR 20%%, with a fine-tune per "
                   "masked table; every setting with --llm-fit shared); about five times the fine-tuning")
    b.add_argument("--model", default=None, help="LLM: HF model id or folder (default: the bundled SmolLM2-135M)")
    b.add_argument("--llm-fit", default=None, choices=("per-setting", "shared"),
                   help="'per-setting' (default): one LLM (and GReaT) fine-tune per masked table, on every observed "
                   "cell of it; 'shared': one per (table, seed) on the cells no setting masks (about a fifth of the "
                   "fine-tuning, on ~40%% of the cells, MNAR-biased), reused for every setting, stored all or "
                   "nothing, beside MICE / miceforest fitted on the same table")
    b.add_argument("--plan", action="store_true",
                   help="print every unit (data set x seed x setting x imputer), whether it is stored and its "
                   "estimated minutes from a short probe of this machine; runs nothing else")
    b.add_argument("--attempts", nargs="*", default=None,
                   help="also run LLM variants at MCAR 20%% (open questions); no names: all of them")
    b.add_argument("--attempt-datasets", nargs="*", default=None, help="data sets for the attempts (default: all)")
    b.add_argument("--precision", default=None,
                   help="the LLM imputer's precision and training autocast: auto (default: the machine's, as `recllm "
                   "llm check` prints) or a named one; float32 makes the runs of CPUs with and without fast "
                   "bfloat16 the same runs, for a benchmark finished over sessions on different machines")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "imputation.md", _run, stores=(".runs.jsonl",))

