"""``recllm trsr summarize|train|rank`` (the benchmark is :mod:`recllm.bench.trsr`).

    recllm trsr summarize --data ml-latest-small --mode recurrent --users 20 --out summaries.jsonl
    recllm trsr train --data amazon2018-magazine-subscriptions --mode hierarchical --out runs/amazon-hier
    recllm trsr rank --run runs/amazon-hier
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from recllm.cli_args import add_engine_args, fraction, positive_float, positive_int, thread_count
from recllm.trsr.run import RUN_KIND, RUN_VERSION, legacy_run

__all__ = ["register_cli"]


def _check_common(args: argparse.Namespace) -> None:
    """The data set and model options, checked before anything is loaded."""
    from recllm.cli_args import check_data_source, check_model

    check_data_source(args.data)
    check_model(args.model)


def _threads(n: int) -> None:
    from recllm.utils import set_threads

    set_threads(n)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data set name (see `recllm data list`) or a folder of your own "
                   "files (interactions.csv, items.csv with the item text; see `recllm data info --help`)")
    p.add_argument("--mode", default="hierarchical", choices=("hierarchical", "recurrent", "none"))
    p.add_argument("--model", default=None, help="HF id or folder (default: bundled SmolLM2-135M-Instruct)")
    p.add_argument("--item-tokens", type=positive_int, default=32, help="token budget of each item's text")
    p.add_argument("--summary-tokens", type=positive_int, default=64, help="new tokens per summary")
    p.add_argument("--threads", type=thread_count, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace, **extra):
    from recllm.llm.sft import LoRAConfig
    from recllm.trsr.pipeline import TRSRConfig
    from recllm.trsr.ranker import RankerConfig, ranker_sft_config
    from recllm.trsr.segment import SegmentConfig
    from recllm.trsr.summarize import SummarizerConfig

    return TRSRConfig(
        summarizer=SummarizerConfig(mode=args.mode, max_new_tokens=args.summary_tokens,
                                    segment=SegmentConfig(item_tokens=args.item_tokens)),
        ranker=RankerConfig(n_recent=getattr(args, "recent", 3), guarded=getattr(args, "guarded", False)),
        sft=ranker_sft_config(seed=args.seed, show_progress=not args.quiet,
                              **{field: value for field, value in (("epochs", getattr(args, "epochs", None)),
                                                                   ("learning_rate", getattr(args, "lr", None)))
                                 if value is not None}),
        lora=LoRAConfig(), seed=args.seed, **extra)


def _split(name: str, quiet: bool, train: bool = False):
    """The leave-one-out split of ``name``, checked for its evaluation cases (and, with ``train``, for a user to
    train the ranker on)."""
    from recllm.cli_args import TRAIN_TODO, check_item_text, check_split_cases
    from recllm.data import leave_one_out
    from recllm.data.folder import load_named_or_folder

    dataset = check_item_text(load_named_or_folder(name, show_progress=not quiet), name, "LLM-TRSR prompts with")
    return check_split_cases(leave_one_out(dataset), name, train_todo=TRAIN_TODO if train else None)


def _summarize(args: argparse.Namespace) -> int:
    """Summarise the test-time histories of the first ``--users`` test users and write JSON lines."""
    from recllm.cli_args import config_errors, engine_options
    from recllm.outputs import check_output_file

    _check_common(args)
    options = engine_options(args)  # --engine ray: Ray Data must be installed
    # ~ expanded; an empty --out is refused, not taken for "print"
    out = None if args.out is None else check_output_file(args.out, (".jsonl",), overwrite=args.overwrite)
    with config_errors():
        cfg = _config(args)
    _threads(args.threads)
    from recllm.llm import load_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.trsr.pipeline import dataset_item_texts
    from recllm.trsr.summarize import summarize_histories

    split = _split(args.data, args.quiet)
    cases = split.eval_cases("test")
    n = min(args.users, len(cases))
    lm = load_causal_lm(args.model, dtype="auto")
    texts = dataset_item_texts(split.dataset, lm.tokenizer, args.item_tokens)
    result = summarize_histories(lm, cases.histories[:n], texts, cfg.summarizer, cache=DiskCache(),
                                 show_progress=not args.quiet, engine=args.engine, ray_options=options)
    users = split.dataset.users["user_id"].to_numpy()
    lines = [json.dumps({"user_id": str(users[int(u)]), "mode": args.mode, "summary": s})
             for u, s in zip(cases.users[:n], result.texts)]
    if out is not None:
        from recllm.utils import write_text_atomic

        write_text_atomic(out, "\n".join(lines) + "\n", replace=args.overwrite)
    else:
        print("\n".join(lines))
    print(f"{n} users, {result.prompts} prompts ({result.generated} generated now), "
          f"{result.users_per_second:.2f} users/s of model time", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    """Fit TRSR on the data set's leave-one-out split; the adapter and the config go to ``--out``.

    Under ``torchrun`` rank 0 makes the summaries (into the shared cache) and writes the run folder; every rank
    fine-tunes its share of each batch (DDP) and reads the summaries rank 0 made."""
    from recllm.cli_args import config_errors, engine_options
    from recllm.distributed.ddp import is_main_process
    from recllm.outputs import check_output_dir, mark_output_dir

    _check_common(args)
    check_output_dir(args.out, RUN_KIND, RUN_VERSION, legacy=legacy_run)
    options = engine_options(args)  # --engine ray: Ray Data must be installed
    with config_errors():
        cfg = _config(args, max_train_users=args.users, max_valid_rows=args.valid_rows,
                      inject_fraction=args.inject_fraction,
                      class_weight=None if args.class_weight == "none" else args.class_weight)
    _threads(args.threads)
    from recllm.llm import load_causal_lm, ranker_base
    from recllm.llm.cache import DiskCache
    from recllm.trsr.candidates import fixed_candidates, subset_rows
    from recllm.trsr.pipeline import TRSR
    from recllm.utils import write_json_atomic

    out = Path(args.out).expanduser()
    split = _split(args.data, args.quiet, train=True)
    valid = subset_rows(fixed_candidates(split, "valid")[0], args.valid_rows, 0)
    start = time.perf_counter()
    summarizer = load_causal_lm(args.model, dtype="auto")
    main = is_main_process()
    if main:
        mark_output_dir(out, RUN_KIND, RUN_VERSION, legacy=legacy_run)  # a rerun resumes in this folder
    model = TRSR(summarizer, ranker_base(summarizer), cfg, cache=DiskCache(), output_dir=out,
                 show_progress=not args.quiet and main, engine=args.engine, ray_options=options
                 ).fit(split, valid=valid)
    if not main:  # under torchrun every rank trained the same adapter; rank 0 writes and reports
        return 0
    from recllm.data.folder import data_reference

    write_json_atomic(out / "trsr_config.json", {"data": data_reference(args.data), "model": args.model,
                                                 "config": cfg.to_dict()})
    print(f"trained on {model.n_train_users_} training users, {model.n_train_groups_} groups, "
          f"{model.n_train_candidates_} labelled candidates in {time.perf_counter() - start:.0f} s; validation "
          f"R@3+R@5+R@10 by epoch: {model.ranker_.valid_scores_}; adapter in {out / 'sft'}")
    return 0


def _rank(args: argparse.Namespace) -> int:
    """Evaluate a trained run on the fixed test candidates (or zero-shot with ``--zero-shot``)."""
    from recllm.cli_args import check_data_source, check_model, engine_options
    from recllm.trsr.run import RUN_CONFIG, read_run

    run = read_run(args.run)  # every file of the run checked before anything is loaded
    check_data_source(run.data, str(run.folder / RUN_CONFIG))
    check_model(run.model, str(run.folder / RUN_CONFIG))
    options = engine_options(args)  # --engine ray: Ray Data must be installed
    _threads(args.threads)
    from recllm.eval import evaluate_sampled
    from recllm.llm import load_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.llm.sft import load_adapter
    from recllm.trsr.candidates import fixed_candidates, subset_rows
    from recllm.trsr.pipeline import TRSR

    cfg = run.config
    split = _split(run.data, args.quiet)
    test = subset_rows(fixed_candidates(split, "test")[0], args.rows, 0)
    summarizer = load_causal_lm(run.model, dtype="auto")
    ranker_lm = load_adapter(load_causal_lm(run.model), run.adapter)
    model = TRSR(summarizer, ranker_lm, cfg, cache=DiskCache(), show_progress=not args.quiet, engine=args.engine,
                 ray_options=options).fit(split)
    batch = {"batch_size": max(len(test), 1)} if options is not None else {}  # one Ray pool job for every row
    result = evaluate_sampled(model.score_fn(), test, ks=(3, 5, 10), show_progress=not args.quiet, **batch)
    for metric, (mean, low, high) in result.summary(seed=args.seed).items():
        print(f"{metric}\t{mean:.4f}\t[{low:.4f}, {high:.4f}]")
    return 0


def register_cli(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``recllm trsr ...`` (``bench`` is unused: benchmarks register in :mod:`recllm.bench`)."""
    trsr = sub.add_parser("trsr", help="LLM-TRSR: summarise long histories, train and run the LLM ranker")
    cmds = trsr.add_subparsers(dest="trsr", required=True)
    s = cmds.add_parser("summarize", help="summarise test users' histories (hierarchical / recurrent)")
    _common(s)
    s.add_argument("--users", type=positive_int, default=10, help="how many test users (1 or more)")
    s.add_argument("--out", default=None, help="JSON-lines file (.jsonl; default: print); an existing file needs "
                   "--overwrite")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_engine_args(s, "the summaries")
    s.set_defaults(func=_summarize)
    t = cmds.add_parser("train", help="LoRA-fine-tune the Yes/No ranker on a data set's leave-one-out split")
    _common(t)
    t.add_argument("--out", required=True, help="run folder (adapter, checkpoints, config): new, empty, or an "
                   "earlier run's (resumes when rerun); recllm never writes into a folder it did not make")
    t.add_argument("--users", type=positive_int, default=200, help="training users (one group each: the next item "
                   "and 20 negatives)")
    t.add_argument("--valid-rows", type=positive_int, default=40)
    t.add_argument("--epochs", type=positive_int, default=None, help="default: the ranker's (ranker_sft_config)")
    t.add_argument("--lr", type=positive_float, default=None, help="default: the ranker's (ranker_sft_config)")
    t.add_argument("--class-weight", choices=("balanced", "none"), default="balanced",
                   help="balanced: a group's positive weighs as much as its negatives together (the paper's 1:1 "
                   "pairs); none: every label alike")
    t.add_argument("--recent", type=positive_int, default=3, help="most recent items in the prompt")
    t.add_argument("--guarded", action="store_true", help="quote item text (prompt-injection defence)")
    t.add_argument("--inject-fraction", type=fraction, default=0.0, help="share of training candidates (true items and negatives alike) carrying an injection")
    add_engine_args(t, "the summaries")
    t.set_defaults(func=_train)
    r = cmds.add_parser("rank", help="evaluate a trained run on the fixed sampled test candidates")
    r.add_argument("--run", required=True, help="folder written by `recllm trsr train`")
    r.add_argument("--rows", type=positive_int, default=100)
    r.add_argument("--threads", type=thread_count, default=0)
    r.add_argument("--quiet", action="store_true")
    add_engine_args(r, "the summaries and the candidate scoring (P(Yes))")
    r.set_defaults(func=_rank)
