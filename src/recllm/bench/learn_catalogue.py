"""Why LEARN loses on Amazon: what its top 10 is made of -> docs/results/learn-catalogue.md.

The Amazon catalogue holds every item with metadata (2,326), but only the ~157 items that survived the 5-core
filter of the reviews are ever engaged with. LEARN's in-batch InfoNCE draws its candidates from the batch's target
items, so an item no training user engaged with is never a negative and its content vector is never pushed down.
This benchmark fits SASRec-CE, LEARN (the benchmark's settings) and LEARN with catalogue negatives on each split and
measures the share of each model's top 10 that are items nobody engages with in the data set (train, valid or
test), beside NDCG@10. It uses the learn benchmark's model specs, so the settings are the benchmark's. A second
table checks the number of catalogue negatives on *validation* NDCG@10 (the test set plays no part in it).

Usage: ``recllm bench learn-catalogue [--datasets amazon2018-magazine-subscriptions] [--seed 0] [--threads 1]``
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

NAME = "learn-catalogue"
MODELS = ("SASRec-CE", "LEARN (shared tower)", "LEARN + catalogue negatives")
DEFAULT_DATASETS = ["amazon2018-magazine-subscriptions"]
K = 10
SWEEP = (0, 64, 256, 1024)  # catalogue negatives per batch, compared on validation


def engaged_items(split: Any) -> np.ndarray:
    """Boolean mask over the catalogue: the item occurs in some interaction of the data set (a cold-start split's
    train/valid/test frames do not hold every interaction: histories after the valid cut are in no frame)."""
    from recllm.data.dataset import ITEM

    mask = np.zeros(split.dataset.n_items, dtype=bool)
    mask[split.dataset.item_index(split.dataset.interactions[ITEM])] = True
    return mask


def measure(dataset_name: str, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per split: one row per model (catalogue figures, share of unengaged items in the top K, NDCG@K) and one
    sweep row (best validation NDCG@10 of LEARN per number of catalogue negatives). Each model is fitted once:
    the sweep reuses the fits of LEARN (0 negatives) and of the benchmark's variant."""
    from recllm.data import load, make_split
    from recllm.data.split import SPLITS
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.learn import LEARN
    from recllm.bench.learn.run import CATALOGUE_NEGATIVES, FULL_EPOCHS, content_for, model_specs

    dataset = load(dataset_name)
    content, _ = content_for(dataset, show_progress=False)
    specs = {s.name: s for s in model_specs(quick=False)}
    # sweep counts that a compared model already fits (with the benchmark's settings otherwise the same)
    by_count = {0: "LEARN (shared tower)", CATALOGUE_NEGATIVES: "LEARN + catalogue negatives"}
    rows, sweep_rows = [], []
    for split_name in SPLITS:
        split = make_split(dataset, split_name, seed=seed)
        note = split.info.get("note") if not split.info.get("informative", True) else None
        engaged = engaged_items(split)
        cases = split.eval_cases("test")
        fitted = {}
        for name in MODELS:
            model = fitted[name] = specs[name].build(seed, FULL_EPOCHS, content).fit(split)
            top = np.argsort(-model.score(cases.users, cases.histories), axis=1, kind="stable")[:, :K]
            ndcg = evaluate_full_ranking(model, cases, ks=(K,), show_progress=False).mean()[f"ndcg@{K}"]
            rows.append({"data set": dataset_name, "split": split_name, "note": note, "catalogue": dataset.n_items,
                         "engaged items": int(engaged.sum()), "model": name,
                         f"unengaged share of top {K}": float((~engaged[top]).mean()), f"ndcg@{K}": float(ndcg)})
            print(f"[learn-catalogue] {dataset_name} {split_name} {name}: "
                  f"{rows[-1][f'unengaged share of top {K}']:.3f} ndcg@{K} {ndcg:.4f}", flush=True)
        sweep_row: dict[str, Any] = {"data set": dataset_name, "split": split_name}
        for count in SWEEP:
            model = fitted.get(by_count.get(count, ""))
            if model is None:
                settings = {**specs[by_count[0]].settings, "catalogue_negatives": count}
                model = LEARN(content_embeddings=content, seed=seed, max_epochs=FULL_EPOCHS, **settings).fit(split)
            figures = [r["valid_ndcg@10"] for r in model.history_ if "valid_ndcg@10" in r]
            sweep_row[str(count)] = max(figures) if figures else "no validation cases"
            print(f"[learn-catalogue] sweep {dataset_name} {split_name} {count}: valid ndcg@10 "
                  f"{sweep_row[str(count)]}", flush=True)
        sweep_rows.append(sweep_row)
    return rows, sweep_rows


def report_body(rows: list[dict[str, Any]], seed: int, sweep_rows: list[dict[str, Any]] | None = None) -> str:
    from recllm.eval.report import format_table
    from recllm.bench.learn.run import CATALOGUE_NEGATIVES

    columns = ["data set", "split", "catalogue", "engaged items", "model", f"unengaged share of top {K}", f"ndcg@{K}"]
    return "\n".join([
        f"Seed {seed}, the learn benchmark's settings and test users. *Engaged items*: catalogue items that occur "
        f"in the split's train, valid or test interactions; *unengaged share of top {K}*: the fraction of each "
        f"user's top {K} (seen items not filtered, as in the benchmark) that are items nobody engages with, which "
        "can never be hits. LEARN + catalogue negatives adds uniform draws from the whole catalogue to the "
        "in-batch candidates (mixed negative sampling); on the cold-start split the held-out test items are drawn "
        "like any other item, so it learns nothing about which items are cold.",
        "",
        format_table(rows, columns, digits=4),
        *[f"\n**Not informative**: {r['data set']} {r['split']}: {r['note']}" for r in rows
          if r.get("note") and r["model"] == rows[0]["model"]],
        *(["", "## How many catalogue negatives (validation NDCG@10)", "",
            f"Best validation NDCG@10 over the epochs of LEARN (shared tower), seed {seed}, by the number of catalogue "
            "negatives drawn per batch (0 = the paper's in-batch candidates only); the learn benchmark's variant "
            f"uses {CATALOGUE_NEGATIVES}.", "",
            format_table(sweep_rows, ["data set", "split", *map(str, SWEEP)], digits=4)] if sweep_rows else []),
    ])


def _run(args: argparse.Namespace) -> int:
    from recllm.cli_args import check_dataset, fetch_data
    from recllm.data import data_files
    from recllm.eval.report import write_report
    from recllm.llm.precision import describe_precision
    from recllm.utils import set_threads

    for name in args.datasets:
        check_dataset(name, "--datasets")
    fetch_data(args.datasets)
    set_threads(args.threads)
    rows, sweep_rows = [], []
    for name in args.datasets:
        model_rows, dataset_sweep = measure(name, args.seed)
        rows += model_rows
        sweep_rows += dataset_sweep
    target = args.report
    write_report(target.path, "LEARN on a catalogue of mostly unengaged items", args.command,
                 data_files(args.datasets),
                 report_body(rows, args.seed, sweep_rows), seeds=[args.seed], commit=target.commit,
                 precision=describe_precision(), overwrite=target.overwrite)
    print(f"[learn-catalogue] wrote {target.path}")
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench learn-catalogue``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import seed_arg, thread_count

    b = bench.add_parser(NAME, help="what LEARN's top 10 is made of on Amazon -> docs/results/learn-catalogue.md")
    b.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    b.add_argument("--seed", type=seed_arg, default=0)
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    add_report_args(b, "learn-catalogue.md", _run)

