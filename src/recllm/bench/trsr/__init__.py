"""``recllm bench trsr``: the LLM-TRSR benchmark -> docs/results/trsr.md.

The protocol and methods are in :mod:`recllm.bench.trsr.run`, the report in :mod:`recllm.bench.trsr.report`.
"""

from __future__ import annotations

import argparse

NAME = "trsr"


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.trsr.run import BENCH_LR, DATASETS, MIND, run_benchmark
    from recllm.errors import UserInputError
    from recllm.utils import set_threads

    known = [spec.name for spec in (*DATASETS, MIND)]
    unknown = sorted(set(args.datasets or ()) - set(known))
    if unknown:
        raise UserInputError(f"unknown benchmark data set(s) {unknown}", "--datasets",
                             f"choose from {', '.join(known)}")
    set_threads(args.threads)
    return run_benchmark(quick=args.quick, out=args.report, datasets=args.datasets, seeds=args.seeds,
                         show_progress=not args.quiet, score_dtype=args.score_dtype,
                         lr=args.lr if args.lr is not None else BENCH_LR)


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench trsr``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import non_negative_int, positive_float

    b = bench.add_parser(NAME, help="LLM-TRSR benchmark -> docs/results/trsr.md")
    b.add_argument("--quick", action="store_true", help="tiny sizes for development (a few minutes)")
    b.add_argument("--datasets", nargs="*", default=None, help="subset of the benchmark data sets")
    b.add_argument("--seeds", nargs="*", type=int, default=None, help="training seeds (default: the size preset's)")
    b.add_argument("--score-dtype", default="auto",
                   help="ranker scoring precision: auto (the machine's, as `recllm llm check` prints) or a named one "
                   "(a wrong name lists the choices); a half precision keeps the answer logits in full precision")
    b.add_argument("--lr", type=positive_float, default=None,
                   help="LoRA learning rate (default: the benchmark's, printed in its settings)")
    b.add_argument("--threads", type=non_negative_int, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "trsr.md", _run)


if __name__ == "__main__":
    import sys

    from recllm.bench import main

    sys.exit(main(NAME))
