"""The ``recllm`` command.

Foundation commands live here (``data``, ``llm check``, ``demo``); each system package plugs in its own
subcommands and benchmark through ``register_cli(subparsers, bench)``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

# System packages that add subcommands. Each ``register_cli(subparsers, bench)`` adds its top-level command(s) to
# ``subparsers`` and its benchmark to ``bench`` (the ``recllm bench`` group); handlers are set with
# ``parser.set_defaults(func=callable(args) -> int)``.
PLUGINS: tuple[str, ...] = ("recllm.impute.cli", "recllm.learn.cli", "recllm.trsr.cli")


# ---------------------------------------------------------------------------------------------- data
def _data_list(args: argparse.Namespace) -> int:
    from recllm.data import DATASETS, data_root

    for name in sorted(DATASETS):
        root = data_root(name)
        state = "present" if root.is_dir() and any(root.iterdir()) else "not downloaded"
        print(f"{name:40s} {state:15s} {root}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from recllm.data import load

    dataset = load(args.name)
    print(json.dumps(dataset.summary(), indent=2))
    schema = {k: list(v) for k, v in vars(dataset.schema).items() if isinstance(v, tuple) and v}
    print("schema:", json.dumps(schema))
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from recllm.data import prepare

    start = time.perf_counter()
    dataset = prepare(args.name)
    print(f"{args.name}: {len(dataset.interactions):,} interactions, {dataset.n_users:,} users, "
          f"{dataset.n_items:,} items, ready in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------- llm
def _llm_check(args: argparse.Namespace) -> int:
    import torch

    from recllm.llm import chat_prompt, generate, load_causal_lm, load_text_encoder
    from recllm.llm.hardware import has_amx, has_bf16_matmul

    torch.set_num_threads(args.threads) if args.threads else None
    start = time.perf_counter()
    lm = load_causal_lm(args.model, dtype=args.dtype)
    print(f"loaded {lm.name} on {lm.device} ({lm.dtype}) in {time.perf_counter() - start:.1f} s; "
          f"AMX: {has_amx()}; bf16 matmul: {has_bf16_matmul()}; threads: {torch.get_num_threads()}")
    prompts = [chat_prompt(lm, "In one sentence, why do people rewatch their favourite films?")] * args.batch
    start = time.perf_counter()
    texts = generate(lm, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch, show_progress=False)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    print(f"generation: {texts[0]!r}")
    print(f"generated {new_tokens} tokens in {seconds:.1f} s = {new_tokens / seconds:.1f} tokens/s (batch {args.batch})")
    encoder = load_text_encoder()
    vec = encoder.encode(["a quiet science-fiction film about memory"])
    print(f"text encoder: {type(encoder).__name__}, embedding dimension {vec.shape[1]}")
    return 0


# ---------------------------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    """Each system on real data with the bundled models, briefly (``--sections`` picks some)."""
    from recllm.demo import run_demo

    sections = [s for part in args.sections for s in part.split(",") if s] if args.sections else None
    return run_demo(seed=args.seed, show_progress=not args.quiet, sections=sections)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recllm", description="Large language models inside recommender systems.")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same numbers)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="list, inspect and prepare data sets").add_subparsers(dest="data", required=True)
    data.add_parser("list", help="known data sets and where they are looked for").set_defaults(func=_data_list)
    info = data.add_parser("info", help="counts and schema of a data set")
    info.add_argument("name")
    info.set_defaults(func=_data_info)
    prep = data.add_parser("prepare", help="download if missing, verify, parse and cache as parquet")
    prep.add_argument("name")
    prep.set_defaults(func=_data_prepare)

    llm = sub.add_parser("llm", help="language-model utilities").add_subparsers(dest="llm", required=True)
    check = llm.add_parser("check", help="load the bundled models, print one generation and the throughput")
    check.add_argument("--model", default=None, help="HF id or folder (default: bundled SmolLM2-135M-Instruct)")
    check.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"))
    check.add_argument("--batch", type=int, default=8)
    check.add_argument("--max-new-tokens", type=int, default=32)
    check.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    check.set_defaults(func=_llm_check)

    demo = sub.add_parser("demo", help="run the main job on real data with the bundled models")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--sections", nargs="*", default=None,
                      help="run only these sections: baselines, impute, learn, trsr (default: all)")
    demo.set_defaults(func=_demo)

    bench = sub.add_parser("bench", help="run a benchmark and write docs/results/*.md").add_subparsers(
        dest="bench", required=True
    )
    for module_name in PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that system is not built yet
        module.register_cli(sub, bench)
    return parser


def _quiet_libraries() -> None:
    """``--quiet``: no progress bars from transformers (weight loading) or huggingface_hub either."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency; this only guards a broken install's error message
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):
        _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - the command line shows a clean message for expected errors
        from recllm.data import DataError

        if isinstance(exc, (DataError, FileNotFoundError)):
            print(f"recllm: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
