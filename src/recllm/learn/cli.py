"""``recllm learn train|recommend|similar`` (the benchmark is :mod:`recllm.bench.learn`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import time

from recllm.cli_args import add_engine_args, non_negative_int, positive_int, thread_count


def _train(args: argparse.Namespace) -> int:
    from recllm.cli_args import check_data_source, check_model, config_errors, engine_options
    from recllm.learn import LEARN, ContentConfig
    from recllm.learn.artifact import ARTIFACT_FILES, OUTPUT_KIND, OUTPUT_VERSION
    from recllm.learn.encoder import ALIASES
    from recllm.outputs import check_output_dir

    # every argument is checked before the data set is loaded and the model trained
    check_data_source(args.data)
    if args.item_input != "id" and args.content_model.lower() not in ALIASES:
        check_model(args.content_model, "--content-model")
    out = check_output_dir(args.out, OUTPUT_KIND, OUTPUT_VERSION, known=ARTIFACT_FILES)
    options = engine_options(args)  # --engine ray: Ray Data must be installed
    checkpoint = None
    if args.checkpoint_dir is not None:  # new, empty, or an earlier fit's checkpoint: nothing else is written into
        from pathlib import Path

        from recllm.distributed.checkpoint import EpochCheckpoint
        from recllm.errors import UserInputError

        checkpoints = Path(args.checkpoint_dir).expanduser().resolve()
        if checkpoints == out.resolve() or out.resolve() in checkpoints.parents or checkpoints in out.resolve().parents:
            raise UserInputError("the checkpoints would be written inside the artifact folder (or it inside them), "
                                 "which then holds files the artifact does not", "--checkpoint-dir",
                                 "give --checkpoint-dir a folder outside --out, e.g. beside it")

        checkpoint = EpochCheckpoint.at(args.checkpoint_dir, where="--checkpoint-dir")
    if args.index != "exact" and importlib.util.find_spec("faiss") is None:
        from recllm.errors import UserInputError

        raise UserInputError(f"the {args.index!r} index needs faiss, which is not installed", "--index",
                             "install faiss-cpu, or use --index exact")
    with config_errors():
        content = ContentConfig(model=args.content_model, whiten=args.whiten)
        model = LEARN(item_input=args.item_input, item_tower=args.item_tower, content=content, dim=args.dim,
                      out_dim=args.out_dim, catalogue_negatives=args.catalogue_negatives, max_epochs=args.epochs,
                      patience=args.patience, seed=args.seed, show_progress=not args.quiet,
                      checkpoint_dir=args.checkpoint_dir)  # validates it
    if checkpoint is not None:  # an earlier fit's checkpoint with other settings or processes: refused before any work
        from recllm.distributed.checkpoint import fit_settings
        from recllm.distributed.ddp import world_size

        checkpoint.check_settings(fit_settings(model.config), "--checkpoint-dir", world_size=world_size())
    from recllm.utils import set_threads

    set_threads(args.threads)

    from recllm.cli_args import TRAIN_TODO, check_item_text, check_split_cases
    from recllm.data import make_split
    from recllm.data.folder import load_named_or_folder
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.learn import save

    dataset = load_named_or_folder(args.data)
    if args.item_input != "id":
        check_item_text(dataset, args.data, "LEARN embeds", ", or pass --item-input id")
    split = check_split_cases(make_split(dataset, args.split, seed=args.seed), args.data,
                              "add interactions (leave-one-out needs users with 3 or more), or try another --split",
                              TRAIN_TODO + ", or try another --split")
    model.check_checkpoint(split, "--checkpoint-dir")  # one written for other data: refused before the encoder runs
    start = time.perf_counter()
    if options is not None and args.item_input != "id":  # item embeddings on a Ray actor pool (same cache)
        from recllm.learn.encoder import catalogue_texts, raw_item_embeddings

        model.content_embeddings = raw_item_embeddings(catalogue_texts(dataset), content, engine="ray",
                                                       ray_options=options, show_progress=not args.quiet)
    model.fit(split)
    seconds = time.perf_counter() - start
    from recllm.distributed.ddp import is_main_process

    if not is_main_process():  # under torchrun every rank trained the same model; rank 0 evaluates and writes
        return 0
    result = evaluate_full_ranking(model, split.eval_cases("test"), ks=(10, 50), show_progress=not args.quiet)
    folder = save(model, out, dataset, index=args.index)
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

    try:
        from recllm.data.folder import load_if_present
        from recllm.learn.artifact import trained_on

        dataset = load_if_present(trained_on(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))))
        if dataset is None:
            return {}
        items = dataset.items
    except Exception:  # noqa: BLE001 - titles are a convenience; ids are printed regardless
        return {}
    column = "title" if "title" in items.columns else None
    return dict(zip(items["item_id"].astype(str), items[column].astype(str))) if column else {}


def _artifact(args: argparse.Namespace):
    from recllm.learn import load

    return load(args.artifact)  # checks every file of the folder, each problem one UserInputError


def _recommend(args: argparse.Namespace) -> int:
    retriever = _artifact(args)
    if args.history is not None:
        rows = retriever.recommend_for_history(args.history, k=args.k, filter_seen=not args.keep_seen)
    elif args.user not in set(retriever.user_ids):
        from recllm.errors import UserInputError

        raise UserInputError(f"user {args.user!r} is not in this artifact ({len(retriever.user_ids)} users, e.g. "
                             f"{', '.join(map(repr, retriever.user_ids[:3]))})", "--user",
                             "give a user id the artifact was trained on (its user_ids.json), or a new user's "
                             "items with --history ITEM [ITEM ...]")
    else:
        rows = retriever.recommend(args.user, k=args.k, filter_seen=not args.keep_seen)
    _print_items(rows, _titles(args, args.artifact))
    return 0


def _similar(args: argparse.Namespace) -> int:
    retriever = _artifact(args)
    retriever.item_position(args.item)  # an unknown item is reported before the titles are loaded
    titles = _titles(args, args.artifact)
    print(f"items most similar to {args.item} {titles.get(args.item, '')}".rstrip())
    _print_items(retriever.similar_items(args.item, k=args.k), titles)
    return 0


def register_cli(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``recllm learn ...`` (``bench`` is unused: benchmarks register in :mod:`recllm.bench`)."""
    learn = sub.add_parser("learn", help="LEARN: LLM content embeddings + twin towers + retrieval").add_subparsers(
        dest="learn", required=True)

    train = learn.add_parser("train", help="train LEARN on a data set and write an artifact folder")
    train.add_argument("--data", required=True, help="data set name (see `recllm data list`) or a folder of your "
                       "own files (interactions.csv, optionally items.csv with the item text; see `recllm data info "
                       "--help`)")
    train.add_argument("--out", required=True, help="artifact folder to write: new, empty, or an earlier artifact "
                       "(replaced atomically); recllm never replaces a folder it did not write")
    train.add_argument("--split", default="loo", choices=("loo", "temporal", "cold_start"))
    train.add_argument("--item-input", default="content", choices=("content", "id", "content+id"))
    train.add_argument("--item-tower", default="shared", choices=("shared", "mlp"))
    train.add_argument("--content-model", default="smollm2",
                       help="smollm2 (bundled causal LM), minilm (bundled sentence encoder), or any HF id/folder")
    train.add_argument("--whiten", default="whiten", choices=("none", "center", "whiten"))
    train.add_argument("--dim", type=positive_int, default=64)
    train.add_argument("--out-dim", type=positive_int, default=64)
    train.add_argument("--catalogue-negatives", type=non_negative_int, default=0,
                       help="negatives per batch drawn uniformly from the whole catalogue, besides the in-batch ones; "
                            "use when many catalogue items have no interactions (default 0: in-batch only, as the paper)")
    train.add_argument("--epochs", type=positive_int, default=100, help="maximum epochs (early stopping on validation)")
    train.add_argument("--patience", type=positive_int, default=5)
    train.add_argument("--index", default="exact", choices=("exact", "flat", "hnsw"))
    train.add_argument("--threads", type=thread_count, default=0, help="torch threads (0: torch's default)")
    train.add_argument("--checkpoint-dir", default=None,
                       help="the towers' epoch checkpoints (new, empty, or an earlier run's): rerun the same command "
                            "with the same folder and an interrupted training resumes (also under torchrun)")
    add_engine_args(train, "the item embeddings")
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_train)

    rec = learn.add_parser("recommend", help="top-k items for a user of an artifact (seen items removed)")
    rec.add_argument("artifact")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user the artifact was trained on (its user_ids.json)")
    who.add_argument("--history", nargs="+", metavar="ITEM",
                     help="a new user's items, oldest first (item ids of the artifact's catalogue)")
    rec.add_argument("-k", type=positive_int, default=10, help="how many items (1 or more)")
    rec.add_argument("--keep-seen", action="store_true", help="do not remove items the user already interacted with")
    rec.set_defaults(func=_recommend)

    sim = learn.add_parser("similar", help="nearest items of an item in an artifact")
    sim.add_argument("artifact")
    sim.add_argument("--item", required=True)
    sim.add_argument("-k", type=positive_int, default=10, help="how many items (1 or more)")
    sim.set_defaults(func=_similar)
