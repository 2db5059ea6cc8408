"""``recllm bench foundation``: data loaders, LLM core and evaluation figures -> docs/results/foundation.md.

Sections (``--only``, comma-separated, in this order): loader counts against each SOURCE.md (:mod:`.data`);
SmolLM2 throughput through recllm (prefill, generation) and shared-prefix candidate scoring against the machine's
measured matmul FLOP/s (:mod:`.llm`); LoRA training (:mod:`.sft`); grouped (shared-prefix) SFT against per-pair SFT
(:mod:`.grouped_sft`); whole-row against per-cell imputer SFT (:mod:`.whole_row`); popularity and item-kNN on
MovieLens-100K (:mod:`.baselines`). The machine section (:mod:`.machine`) comes first in every report, and each run
appends its machine to ``foundation.machines.jsonl`` beside the report. ``recllm bench foundation-baselines``
writes the baselines alone to docs/results/foundation_baselines.md.

Usage: ``recllm bench foundation [--only data,llm,sft,grouped_sft,whole_row,baselines] [--threads N]``.
"""

from __future__ import annotations

import argparse
import importlib
import time

NAME = "foundation"
SECTIONS = {
    "data": "recllm.bench.foundation.data",
    "llm": "recllm.bench.foundation.llm",
    "sft": "recllm.bench.foundation.sft",
    "grouped_sft": "recllm.bench.foundation.grouped_sft",
    "whole_row": "recllm.bench.foundation.whole_row",
    "baselines": "recllm.bench.foundation.baselines",
}
LLM_SECTIONS = ("llm", "sft", "grouped_sft", "whole_row")  # they run SmolLM2 (the header names the precision)
# The real data sets the sections read (their files' sha256 go in the header).
DATASETS = ("ml-100k", "ml-latest-small", "advertising", "amazon2018-magazine-subscriptions",
            "mind-small-train-sample-unofficial")
# The data sets a section cannot run without (checked before any section runs; the data section reports on
# whichever of DATASETS are present).
SECTION_DATA = {"sft": ("ml-100k",), "grouped_sft": ("ml-100k",), "whole_row": ("advertising",),
                "baselines": ("ml-100k",)}


def sections_arg(text: str) -> str:
    """``--only``: comma-separated names of :data:`SECTIONS` (an argparse type: a bad name is a one-line error)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown or [text]}; choose from "
                                         f"{','.join(SECTIONS)} (comma-separated)")
    return ",".join(names)


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.foundation import machine
    from recllm.cli_args import fetch_data
    from recllm.data import data_files
    from recllm.eval.report import write_report
    from recllm.utils import set_threads

    sections = args.only.split(",")
    machine.read_history(args.report.path)  # a damaged record: one line now, not after the measurements
    fetch_data(d for key in sections for d in SECTION_DATA.get(key, ()))
    set_threads(args.threads)
    target = args.report
    facts = machine.measure()
    body = [machine.section(facts, target.path)]
    for key in sections:
        print(f"[foundation] section {key} ...", flush=True)
        start = time.perf_counter()
        text = importlib.import_module(SECTIONS[key]).run()
        body.append(text.rstrip() + f"\n\n_Section time: {time.perf_counter() - start:.0f} s._\n")
    precision = None
    if set(sections) & set(LLM_SECTIONS):
        from recllm.llm.precision import describe_precision

        precision = describe_precision()
    write_report(target.path, "Foundation: data, LLM core, evaluation", args.command, data_files(DATASETS),
                 "\n".join(body), commit=target.commit, precision=precision, overwrite=target.overwrite)
    machine.append_history(target.path, facts, target.commit)
    print(f"[foundation] wrote {target.path}")
    return 0


def _run_baselines(args: argparse.Namespace) -> int:
    from recllm.bench.foundation import baselines
    from recllm.cli_args import fetch_data
    from recllm.data import data_files
    from recllm.eval.report import write_report
    from recllm.utils import set_threads

    fetch_data([baselines.DATASET])
    set_threads(args.threads)
    target = args.report
    start = time.perf_counter()
    body = baselines.run(seed=args.seed, quick=args.quick)
    body += f"\n_Total time: {time.perf_counter() - start:.0f} s._\n"
    write_report(target.path, "Foundation baselines: Popularity and ItemKNN on MovieLens-100K", args.command,
                 data_files([baselines.DATASET]), body, seeds=[args.seed], commit=target.commit,
                 overwrite=target.overwrite)
    print(body)
    print(f"[foundation-baselines] wrote {target.path}")
    return 0


def _threads_arg(parser: argparse.ArgumentParser) -> None:
    from recllm.cli_args import thread_count

    parser.add_argument("--threads", type=thread_count, default=0,
                        help="torch / BLAS threads (0: library default; use 1 on a shared machine)")


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench foundation`` and ``recllm bench foundation-baselines``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import seed_arg

    b = bench.add_parser(NAME, help="data loaders, LLM core, evaluation -> docs/results/foundation.md")
    b.add_argument("--only", type=sections_arg, default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    _threads_arg(b)
    add_report_args(b, "foundation.md", _run)

    p = bench.add_parser("foundation-baselines",
                         help="popularity and item-kNN on MovieLens-100K -> docs/results/foundation_baselines.md")
    p.add_argument("--seed", type=seed_arg, default=0, help="bootstrap and negative-sampling seed")
    p.add_argument("--quick", action="store_true", help="a 2-point ItemKNN grid instead of the full one")
    _threads_arg(p)
    add_report_args(p, "foundation_baselines.md", _run_baselines)
