"""``recllm bench trsr``: the LLM-TRSR benchmark -> docs/results/trsr.md.

The protocol and methods are in :mod:`recllm.bench.trsr.run`, the report in :mod:`recllm.bench.trsr.report`.
"""

from __future__ import annotations

import argparse

NAME = "trsr"


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.trsr.run import benchmark_specs, check_seeds, run_benchmark
    from recllm.cli_args import fetch_data
    from recllm.llm.precision import check_dtype
    from recllm.utils import set_threads

    check_dtype(args.precision, "--precision")  # a wrong name: one line naming the option, before any download
    check_dtype(args.score_dtype, "--score-dtype")
    datasets = args.only or args.datasets
    specs = benchmark_specs(datasets)  # an unknown --datasets / --only name: one line, before any work
    check_seeds(args.seeds)  # so is a --seeds list whose parts other sessions would not find
    fetch_data(s.name for s in specs)  # and so are data files that are not here
    set_threads(args.threads)
    if args.plan:
        from recllm.bench.trsr.plan import plan_benchmark

        return plan_benchmark(quick=args.quick, out=args.report, datasets=datasets, seeds=args.seeds,
                              score_dtype=args.score_dtype, lr=args.lr, show_progress=not args.quiet,
                              precision=args.precision)
    return run_benchmark(quick=args.quick, out=args.report, datasets=datasets, seeds=args.seeds,
                         show_progress=not args.quiet, score_dtype=args.score_dtype, lr=args.lr,
                         command=getattr(args, "command", None), precision=args.precision)


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench trsr``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import positive_float, seed_arg, thread_count

    b = bench.add_parser(NAME, help="LLM-TRSR benchmark -> docs/results/trsr.md")
    b.add_argument("--quick", action="store_true", help="tiny sizes for development (a few minutes)")
    b.add_argument("--datasets", nargs="+", default=None, help="subset of the benchmark data sets")
    b.add_argument("--only", nargs=1, default=None, metavar="DATASET",
                   help="run one data set (its units are stored as they finish, so pieces add up)")
    b.add_argument("--plan", action="store_true",
                   help="print every unit (lr choice, SFT runs, per-seed parts, learning curve), whether it is stored "
                   "and its estimated time from a short probe of this machine; runs nothing else")
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=None,
                   help="training seeds: 0, 0 1, 0 1 2, ... (default: the size preset's); a long campaign is split "
                   "across sessions with --only DATASET, not with --seeds")
    b.add_argument("--score-dtype", default="auto",
                   help="the faster scoring precision whose rank agreement is printed beside the headline tables "
                   "(which are scored in the training precision): auto (the machine's, as `recllm llm check` prints) "
                   "or a named one (a wrong name lists the choices)")
    b.add_argument("--precision", default="auto",
                   help="the summarizer's precision and so LoRA training's autocast: auto (the machine's, as `recllm "
                   "llm check` prints) or a named one; float32 makes the runs of CPUs with and without fast bfloat16 "
                   "the same runs, for a benchmark finished over sessions on different machines")
    b.add_argument("--lr", type=positive_float, default=None,
                   help="LoRA learning rate (default: chosen on "
                   "validation; printed in the report)")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "trsr.md", _run, stores=(".runs.jsonl",))


if __name__ == "__main__":
    import sys

    from recllm.bench import main

    sys.exit(main(NAME))
