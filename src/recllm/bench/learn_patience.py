"""Early-stopping patience chosen on validation only -> docs/results/learn-patience.md.

The learn benchmark stops each sequence model after ``patience`` epochs without a better validation NDCG@10 and
keeps the best epoch. Patience only decides when training stops, never what an epoch does, so one fit that never
stops early (patience = its epoch cap) records the validation curve from which every smaller patience's stop, kept
epoch and kept validation figure follow exactly. This benchmark fits the learn benchmark's sequence models that way
on its tuning data set (ML-100K leave-one-out, where their other settings were chosen), with a cap above the
benchmark's, and stores each validation curve (resumable). The report
(:mod:`recllm.bench.learn.patience_report`) replays early stopping on them and chooses the patience; no test case
is scored.

Usage: ``recllm bench learn-patience [--datasets ml-100k] [--seeds 0 1 2] [--epochs 100] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

NAME = "learn-patience"
MODELS = ("SASRec-CE", "HSTU", "LEARN (shared tower)")
DEFAULT_DATASET = "ml-100k"  # the learn benchmark's tuning data set (ABLATION_DATASET)
SPLIT = "loo"


def fit_curve(spec: Any, split: Any, seed: int, epochs: int, content: Any) -> dict[str, Any]:
    """Fit ``spec`` with no early stop before ``epochs`` and return its validation curve and epoch time."""
    model = spec.build(seed, epochs, content)  # the spec's patience is ``epochs`` (see measure)
    start = time.perf_counter()
    model.fit(split)
    curve = [float(r["valid_ndcg@10"]) for r in model.history_ if "valid_ndcg@10" in r]
    if len(curve) != len(model.history_):
        raise RuntimeError(f"{spec.name}: validation was not measured at every epoch")
    return {"curve": curve, "epoch_seconds": float(model.epoch_seconds_),
            "fit_seconds": time.perf_counter() - start}


def measure(dataset_name: str, seeds: list[int], epochs: int, models: tuple[str, ...], runs_path: Any,
            show_progress: bool = False) -> dict[str, list[dict[str, Any]]]:
    """model -> one stored or fitted curve per seed (resumable: each fit is stored as it finishes)."""
    from recllm.bench.learn.recbole_ref import cases_fingerprint
    from recllm.bench.learn.run import load_dataset, model_specs
    from recllm.bench.runs import RunStore, data_sha256, run_key
    from recllm.data import make_split
    from recllm.data.folder import source_files
    from recllm.learn.encoder import content_for

    dataset = load_dataset(dataset_name)
    if dataset is None:
        from recllm.errors import UserInputError

        raise UserInputError(f"data set {dataset_name!r} is not present here", "--datasets",
                             "see `recllm data list`")
    specs = {s.name: s for s in model_specs(quick=False, patience=epochs)}
    store = RunStore(runs_path)
    fingerprint = data_sha256(source_files([dataset_name]))
    content: dict[str, Any] = {}  # encoder -> raw item embeddings, computed when a fit needs them
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    for seed in seeds:
        split = make_split(dataset, SPLIT, seed=seed)
        cases = cases_fingerprint(split.eval_cases("valid"))
        for name in models:
            spec = specs[name]
            key = run_key(data=fingerprint, dataset=dataset_name, split=SPLIT, seed=seed, model=name,
                          settings=spec.settings, encoder=spec.encoder, epochs=epochs, valid_cases=cases)
            row, how = store.get(key), "stored"
            if row is None:
                if spec.encoder and spec.encoder not in content:
                    content[spec.encoder], _ = content_for(dataset, show_progress, spec.encoder)
                row, how = fit_curve(spec, split, seed, epochs, content.get(spec.encoder or "")), "fitted"
                store.put(key, row)
            out[name].append(row)
            print(f"[learn-patience] {dataset_name} seed {seed} {name} ({how}): best valid ndcg@10 "
                  f"{max(row['curve']):.4f} at epoch {int(np.argmax(row['curve'])) + 1} of {len(row['curve'])}",
                  flush=True)
    return out


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.learn.patience_report import intro, report_section
    from recllm.bench.learn.run import DEFAULT_PATIENCE, FULL_EPOCHS
    from recllm.cli_args import check_data_source, fetch_data
    from recllm.data.folder import source_files
    from recllm.errors import UserInputError
    from recllm.eval.report import write_report
    from recllm.utils import set_threads

    for name in args.datasets:
        check_data_source(name, "--datasets")
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        raise UserInputError(f"unknown model(s) {unknown}", "--models", f"choose from {', '.join(map(repr, MODELS))}")
    if args.epochs < FULL_EPOCHS:
        raise UserInputError(f"{args.epochs} epochs is below the benchmark's cap of {FULL_EPOCHS}", "--epochs",
                             f"give at least {FULL_EPOCHS}")
    fetch_data(args.datasets)
    set_threads(args.threads)
    target = args.report
    sections = []
    for name in args.datasets:
        runs = measure(name, args.seeds, args.epochs, tuple(args.models), target.path.with_suffix(".runs.jsonl"),
                       show_progress=not args.quiet)
        sections.append(report_section(name, runs, args.seeds, args.epochs, FULL_EPOCHS, DEFAULT_PATIENCE))
    write_report(target.path, "Early-stopping patience on validation", args.command, source_files(args.datasets),
                 "\n\n".join([intro(SPLIT, args.seeds, args.epochs, FULL_EPOCHS), *sections]), seeds=args.seeds,
                 commit=target.commit, overwrite=target.overwrite)
    print(f"[learn-patience] wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench learn-patience``."""
    from recllm.bench.learn.stopping import FULL_EPOCHS
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import positive_int, seed_arg, thread_count

    b = bench.add_parser(NAME, help="early-stopping patience of the learn benchmark chosen on validation -> "
                                    "docs/results/learn-patience.md")
    b.add_argument("--datasets", nargs="+", default=[DEFAULT_DATASET],
                   help=f"data sets of `recllm data list` or data folders (default {DEFAULT_DATASET})")
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=[0, 1, 2])
    b.add_argument("--models", nargs="+", default=list(MODELS))
    cap = 2 * FULL_EPOCHS  # twice the benchmark's cap, to show whether that cap binds
    b.add_argument("--epochs", type=positive_int, default=cap, help=f"epochs of each validation curve (default {cap})")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "learn-patience.md", _run, stores=(".runs.jsonl",))
