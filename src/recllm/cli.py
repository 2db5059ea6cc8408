"""The ``recllm`` command. Each system plugs its own subcommands in through ``register_cli``."""

from __future__ import annotations

import argparse
import importlib
import sys

# System packages that add subcommands: module -> attribute. Each ``register_cli(subparsers, bench)`` adds its
# top-level command(s) to ``subparsers`` and its benchmark to ``bench`` (the ``recllm bench`` group).
# Each handler is set with ``parser.set_defaults(func=callable(args) -> int)``.
PLUGINS: tuple[str, ...] = ("recllm.impute.cli", "recllm.learn.cli", "recllm.trsr.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recllm", description="Large language models inside recommender systems.")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same numbers)")
    sub = parser.add_subparsers(dest="command", required=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
