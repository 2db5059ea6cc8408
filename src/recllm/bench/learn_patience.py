"""Early-stopping patience chosen on validation only -> docs/results/learn-patience.md.

The learn benchmark stops each sequence model after ``patience`` epochs without a better validation NDCG@10 and
keeps the best epoch. Patience only decides when training stops, never what an epoch does, so one fit that never
stops early (patience = its epoch cap) records the validation curve from which every smaller patience's stop, kept
epoch and kept validation figure follow exactly (:func:`stop_under`, the rule of
``recllm.models.sasrec.SequentialRecommender.fit``). This benchmark fits the learn benchmark's sequence models that
way on its tuning data set (ML-100K leave-one-out, where their other settings were chosen), with a cap above the
benchmark's, and reads off, per patience: the validation NDCG@10 it keeps and the epochs it trains. The chosen
patience (:func:`choose_patience`) is the smallest whose kept validation figure is within :data:`TOLERANCE` of the
best the benchmark's cap allows, for every model (seed means). No test case is scored.

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
CAP = 100  # epochs of each curve: twice the benchmark's cap, to show whether that cap binds
PATIENCES = (3, 5, 10, 15, 20, 30)
# A patience is good enough when what it keeps is within 1% (relative) of the best validation NDCG@10 of the
# benchmark's epoch cap: seed-to-seed spread of that figure on ML-100K is several percent, so finer is noise.
TOLERANCE = 0.01


def stop_under(curve: list[float], patience: int, cap: int) -> tuple[int, float, int]:
    """(kept epoch, its validation figure, epochs trained) of early stopping with ``patience`` and an epoch cap
    ``cap`` on a validation ``curve`` (one figure per epoch from epoch 1): a strictly better figure resets the count,
    training stops once the count reaches ``patience`` or at the cap, and the best epoch is kept."""
    if patience < 1 or cap < 1:
        raise ValueError(f"patience and cap must be >= 1 (got {patience}, {cap})")
    if not curve:
        raise ValueError("an empty validation curve")
    best, kept, since = -np.inf, 0, 0
    trained = min(cap, len(curve))
    for epoch, score in enumerate(curve[:trained], 1):
        if score > best:
            best, kept, since = score, epoch, 0
        else:
            since += 1
        if since >= patience:
            trained = epoch
            break
    return kept, float(best), trained


def patience_rows(curves: dict[str, list[list[float]]], cap: int, patiences: tuple[int, ...] = PATIENCES
                  ) -> list[dict[str, Any]]:
    """Per model and patience: seed means of the kept validation NDCG@10, its share of the best within ``cap``,
    the kept epoch and the epochs trained (``curves``: model -> one curve per seed)."""
    rows = []
    for model, seeds in curves.items():
        best = float(np.mean([max(c[:cap]) for c in seeds]))
        for patience in (*patiences, cap):
            stops = [stop_under(c, patience, cap) for c in seeds]
            kept = float(np.mean([s[1] for s in stops]))
            rows.append({"model": model, "patience": patience if patience != cap else f"{cap} (never early)",
                         "valid ndcg@10 kept": kept, "share of best": kept / best if best > 0 else float("nan"),
                         "kept epoch": f"{np.mean([s[0] for s in stops]):.1f}",
                         "epochs trained": f"{np.mean([s[2] for s in stops]):.1f}"})
    return rows


def choose_patience(curves: dict[str, list[list[float]]], cap: int, patiences: tuple[int, ...] = PATIENCES,
                    tolerance: float = TOLERANCE) -> int | None:
    """The smallest of ``patiences`` whose kept validation NDCG@10 (seed mean) is at least (1 - ``tolerance``)
    times the best within ``cap`` for every model; None when none is."""
    for patience in sorted(patiences):
        if all(np.mean([stop_under(c, patience, cap)[1] for c in seeds])
               >= (1 - tolerance) * np.mean([max(c[:cap]) for c in seeds]) for seeds in curves.values()):
            return patience
    return None


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

        raise UserInputError(f"data set {dataset_name!r} is not present here", "--dataset",
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


def intro(seeds: list[int], epochs: int, bench_cap: int) -> str:
    """What the report measures (one paragraph)."""
    return (f"Early-stopping patience of the learn benchmark's sequence models, chosen on validation NDCG@10 only "
            f"({SPLIT} split, seeds {', '.join(map(str, seeds))}; no test case is scored). Each model is fitted once "
            f"per seed with the benchmark's settings and no early stop for {epochs} epochs; since patience decides "
            "only when training stops, each row is what early stopping with that patience and the benchmark's "
            f"{bench_cap}-epoch cap would have done on the same fit: the validation NDCG@10 of the epoch it keeps, "
            f"that epoch, and the epochs it trains (seed means). *Share of best*: of the best validation NDCG@10 "
            f"within {bench_cap} epochs.")


def report_section(dataset_name: str, runs: dict[str, list[dict[str, Any]]], seeds: list[int], epochs: int,
                   bench_cap: int, bench_patience: int) -> str:
    """One data set's section: the choice, the table by patience and whether the benchmark's cap binds."""
    from recllm.eval.report import format_table

    curves = {name: [r["curve"] for r in rows] for name, rows in runs.items()}
    chosen = choose_patience(curves, bench_cap)
    listed = ", ".join(map(str, PATIENCES))
    verdict = (f"**Chosen: patience {chosen}**, the smallest of {listed} that keeps at least {1 - TOLERANCE:.0%} of "
               f"the best validation NDCG@10 within {bench_cap} epochs for every model."
               if chosen is not None else
               f"**None of the patiences {listed} keeps {1 - TOLERANCE:.0%} of the best validation NDCG@10 within "
               f"{bench_cap} epochs for every model**: stop only at the cap.")
    uses = f"The learn benchmark uses patience {bench_patience}" + (
        ", the choice." if chosen == bench_patience else ", not the choice: its runs are to be refitted with it.")
    cap_rows = [{"model": name, f"best within {bench_cap}": float(np.mean([max(c[:bench_cap]) for c in cs])),
                 **({f"best within {epochs}": float(np.mean([max(c) for c in cs]))} if epochs > bench_cap else {}),
                 "best epoch per seed": " ".join(str(int(np.argmax(c)) + 1) for c in cs),
                 "s/epoch": float(np.mean([r["epoch_seconds"] for r in runs[name]]))}
                for name, cs in curves.items()]
    return "\n".join([
        f"## {dataset_name}", "", verdict, uses,
        "", format_table(patience_rows(curves, bench_cap), ["model", "patience", "valid ndcg@10 kept",
                                                            "share of best", "kept epoch", "epochs trained"]),
        "", f"Does the benchmark's {bench_cap}-epoch cap bind? Best validation NDCG@10 within it and within "
        f"{epochs} epochs (seed means), and the epoch of each seed's best:", "",
        format_table(cap_rows, list(cap_rows[0])),
    ])


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.learn.run import DEFAULT_PATIENCE, FULL_EPOCHS
    from recllm.cli_args import check_data_source
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
    set_threads(args.threads)
    target = args.report
    sections = []
    for name in args.datasets:
        runs = measure(name, args.seeds, args.epochs, tuple(args.models), target.path.with_suffix(".runs.jsonl"),
                       show_progress=not args.quiet)
        sections.append(report_section(name, runs, args.seeds, args.epochs, FULL_EPOCHS, DEFAULT_PATIENCE))
    write_report(target.path, "Early-stopping patience on validation", args.command, source_files(args.datasets),
                 "\n\n".join([intro(args.seeds, args.epochs, FULL_EPOCHS), *sections]), seeds=args.seeds,
                 commit=target.commit)
    print(f"[learn-patience] wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench learn-patience``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import non_negative_int, positive_int, seed_arg

    b = bench.add_parser(NAME, help="early-stopping patience of the learn benchmark chosen on validation -> "
                                    "docs/results/learn-patience.md")
    b.add_argument("--datasets", nargs="+", default=[DEFAULT_DATASET],
                   help=f"data sets of `recllm data list` or data folders (default {DEFAULT_DATASET})")
    b.add_argument("--seeds", nargs="*", type=seed_arg, default=[0, 1, 2])
    b.add_argument("--models", nargs="+", default=list(MODELS))
    b.add_argument("--epochs", type=positive_int, default=CAP, help=f"epochs of each validation curve (default {CAP})")
    b.add_argument("--threads", type=non_negative_int, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "learn-patience.md", _run)
