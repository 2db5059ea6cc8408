"""``recllm learn train|recommend|similar`` and ``recllm bench learn``."""

from __future__ import annotations

import argparse
import json
import time


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)


def _train(args: argparse.Namespace) -> int:
    from recllm.data import load, make_split
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.learn import LEARN, ContentConfig, save

    _threads(args)
    dataset = load(args.data)
    split = make_split(dataset, args.split, seed=args.seed)
    content = ContentConfig(model=args.content_model, whiten=args.whiten)
    model = LEARN(item_input=args.item_input, item_tower=args.item_tower, content=content, dim=args.dim,
                  out_dim=args.out_dim, catalogue_negatives=args.catalogue_negatives, max_epochs=args.epochs,
                  patience=args.patience, seed=args.seed,
                  show_progress=not args.quiet)
    start = time.perf_counter()
    model.fit(split)
    seconds = time.perf_counter() - start
    result = evaluate_full_ranking(model, split.eval_cases("test"), ks=(10, 50), show_progress=not args.quiet)
    folder = save(model, args.out, dataset, index=args.index)
    summary = {name: [round(v, 4) for v in values] for name, values in result.summary(seed=args.seed).items()
               if name.startswith(("hr@", "ndcg@"))}
    print(json.dumps({"artifact": str(folder), "data": args.data, "split": args.split, "best_epoch": model.best_epoch_,
                      "train_seconds": round(seconds, 1), "test (mean, ci_low, ci_high)": summary}, indent=2))
    return 0


def _print_items(rows: list[tuple[str, float]], titles: dict[str, str]) -> None:
    for rank, (item, score) in enumerate(rows, 1):
        title = titles.get(item, "")
        print(f"{rank:3d}  {item:>12s}  {score:+.4f}  {title}")


def _titles(args: argparse.Namespace, folder: str) -> dict[str, str]:
    """Item titles from the data set named in the artifact, when it can be loaded (for readable output)."""
    from pathlib import Path

    meta = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    try:
        from recllm.data import load

        items = load(meta["dataset"]).items
    except Exception:  # noqa: BLE001 - titles are a convenience; ids are printed regardless
        return {}
    column = "title" if "title" in items.columns else None
    return dict(zip(items["item_id"].astype(str), items[column].astype(str))) if column else {}


def _recommend(args: argparse.Namespace) -> int:
    from recllm.learn import load

    retriever = load(args.artifact)
    rows = retriever.recommend(args.user, k=args.k, filter_seen=not args.keep_seen)
    _print_items(rows, _titles(args, args.artifact))
    return 0


def _similar(args: argparse.Namespace) -> int:
    from recllm.learn import load

    retriever = load(args.artifact)
    titles = _titles(args, args.artifact)
    print(f"items most similar to {args.item} {titles.get(args.item, '')}".rstrip())
    _print_items(retriever.similar_items(args.item, k=args.k), titles)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from recllm.learn.bench import run_benchmark

    _threads(args)
    return run_benchmark(quick=args.quick, datasets=args.datasets, splits=args.splits, seeds=args.seeds,
                         models=args.models, out=args.out, epochs=args.epochs, recbole_run=args.recbole_run,
                         patience=args.patience, fresh=args.fresh,
                         show_progress=not args.quiet)


def register_cli(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``recllm learn ...`` and ``recllm bench learn``."""
    learn = sub.add_parser("learn", help="LEARN: LLM content embeddings + twin towers + retrieval").add_subparsers(
        dest="learn", required=True)

    train = learn.add_parser("train", help="train LEARN on a data set and write an artifact folder")
    train.add_argument("--data", required=True, help="data set name (see `recllm data list`)")
    train.add_argument("--out", required=True, help="artifact folder to write (replaced atomically)")
    train.add_argument("--split", default="loo", choices=("loo", "temporal", "cold_start"))
    train.add_argument("--item-input", default="content", choices=("content", "id", "content+id"))
    train.add_argument("--item-tower", default="shared", choices=("shared", "mlp"))
    train.add_argument("--content-model", default="smollm2",
                       help="smollm2 (bundled causal LM), minilm (bundled sentence encoder), or any HF id/folder")
    train.add_argument("--whiten", default="whiten", choices=("none", "center", "whiten"))
    train.add_argument("--dim", type=int, default=64)
    train.add_argument("--out-dim", type=int, default=64)
    train.add_argument("--catalogue-negatives", type=int, default=0,
                       help="negatives per batch drawn uniformly from the whole catalogue, besides the in-batch ones; "
                            "use when many catalogue items have no interactions (default 0: in-batch only, as the paper)")
    train.add_argument("--epochs", type=int, default=100, help="maximum epochs (early stopping on validation)")
    train.add_argument("--patience", type=int, default=5)
    train.add_argument("--index", default="exact", choices=("exact", "flat", "hnsw"))
    train.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_train)

    rec = learn.add_parser("recommend", help="top-k items for a user of an artifact (seen items removed)")
    rec.add_argument("artifact")
    rec.add_argument("--user", required=True)
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--keep-seen", action="store_true", help="do not remove items the user already interacted with")
    rec.set_defaults(func=_recommend)

    sim = learn.add_parser("similar", help="nearest items of an item in an artifact")
    sim.add_argument("artifact")
    sim.add_argument("--item", required=True)
    sim.add_argument("-k", type=int, default=10)
    sim.set_defaults(func=_similar)

    b = bench.add_parser("learn", help="LEARN vs popularity, SASRec, HSTU -> docs/results/learn.md")
    b.add_argument("--quick", action="store_true", help="one data set, one seed, few epochs")
    b.add_argument("--datasets", nargs="*", default=None)
    b.add_argument("--splits", nargs="*", default=None)
    b.add_argument("--seeds", nargs="*", type=int, default=None)
    b.add_argument("--models", nargs="*", default=None, help="model names as in the report (default: all)")
    b.add_argument("--epochs", type=int, default=None, help="cap on epochs per model (default: 5 quick, 50 full)")
    b.add_argument("--recbole-run", default=None,
                   help="RecBole reference run folder made by `make recbole-reference` (default runs/recbole_reference)")
    b.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs) of the sequential models")
    b.add_argument("--fresh", action="store_true",
                   help="refit every run (default: reuse the runs stored beside the report whose settings match)")
    b.add_argument("--out", default=None, help="report path (default docs/results/learn.md, quick: learn-quick.md)")
    b.add_argument("--threads", type=int, default=0)
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=_bench)
