"""The ``recllm`` command.

Foundation commands live here (``data``, ``llm check``, ``demo``); each system package plugs in its own
subcommands through ``register_cli(subparsers, bench)``; every benchmark (``recllm bench <name>``) registers in
:data:`recllm.bench.BENCHMARKS`.

Errors: a user mistake (bad argument, file, data; :class:`recllm.errors.UserInputError`, a missing path) prints one
line ``recllm <command>: error: <what> (<where>); <what to do>`` and exits 2; an internal failure prints one line
and exits 1 (``--debug`` shows the traceback); Ctrl-C exits 130; a closed pipe (``| head``) ends quietly (141).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from recllm.cli_args import check_dataset, non_negative_float, positive_int, seed_arg, thread_count

# System packages that add subcommands. Each ``register_cli(subparsers, bench)`` adds its top-level command(s) to
# ``subparsers`` (benchmarks live in recllm.bench, not in the systems); handlers are set with
# ``parser.set_defaults(func=callable(args) -> int)``.
PLUGINS: tuple[str, ...] = ("recllm.impute.cli", "recllm.learn.cli", "recllm.trsr.cli", "recllm.serve.cli")


# ---------------------------------------------------------------------------------------------- data
_DATA_FOLDER_HELP = """Counts and schema of a data set. Given a folder (any path), it reads and checks your own files
as `--data FOLDER` of `recllm learn train` and `recllm trsr` would:

  interactions.csv  user_id,item_id,timestamp[,rating|label]  (required; timestamp: integer unix
                    seconds, or ISO 8601 date-times read as UTC)
  items.csv         item_id,<text columns, e.g. title,description>  (optional: the item text; items
                    nobody interacted with stay in the catalogue)
  users.csv         user_id,<text columns>  (optional)

Each may be .parquet (or .pq) instead, with a parquet timestamp column allowed; CSV is UTF-8 with ','
between the cells. Ids are text as written. A mistake is one line naming the file, column and line.
A bare name is a data set of `recllm data list`; write ./NAME for a folder of that name."""


def _data_list(args: argparse.Namespace) -> int:
    from recllm.data import DATASETS, data_root

    for name in sorted(DATASETS):
        root = data_root(name)
        state = "present" if root.is_dir() and any(root.iterdir()) else "not downloaded"
        print(f"{name:40s} {state:15s} {root}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from recllm.cli_args import check_data_source
    from recllm.data.folder import load_named_or_folder

    check_data_source(args.name, "name")
    dataset = load_named_or_folder(args.name)
    print(json.dumps(dataset.summary(), indent=2))
    schema = {k: list(v) for k, v in vars(dataset.schema).items() if isinstance(v, tuple) and v}
    print("schema:", json.dumps(schema))
    read = {k: dataset.info[k] for k in ("timestamps", "exact_duplicate_interactions") if k in dataset.info}
    if "data_folder" in dataset.info and read:  # how a data folder's files were read
        print("read:", json.dumps(read))
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from recllm.data import prepare

    check_dataset(args.name, "name")
    start = time.perf_counter()
    dataset = prepare(args.name)
    print(f"{args.name}: {len(dataset.interactions):,} interactions, {dataset.n_users:,} users, "
          f"{dataset.n_items:,} items, ready in {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------- llm
def _llm_check(args: argparse.Namespace) -> int:
    import torch

    from recllm.llm import chat_prompt, describe_precision, generate, load_causal_lm, load_text_encoder

    from recllm.cli_args import check_model, config_errors
    from recllm.llm.precision import check_dtype
    from recllm.utils import set_threads

    check_model(args.model, "--model")  # both checked before the precision probe and the model load
    with config_errors("--dtype"):
        check_dtype(args.dtype, "--dtype")
    set_threads(args.threads)
    print(f"precision: {describe_precision(args.dtype)}", flush=True)
    start = time.perf_counter()
    lm = load_causal_lm(args.model, dtype=args.dtype)
    print(f"loaded {lm.name} on {lm.device} ({lm.dtype}) in {time.perf_counter() - start:.1f} s; "
          f"threads: {torch.get_num_threads()}")
    prompts = [chat_prompt(lm, "In one sentence, why do people rewatch their favourite films?")] * args.batch
    start = time.perf_counter()
    texts = generate(lm, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch, show_progress=False)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    print(f"generation: {texts[0]!r}")
    print(f"generated {new_tokens} tokens in {seconds:.1f} s = {new_tokens / seconds:.1f} tokens/s (batch {args.batch})")
    from recllm.llm.hardware import count_flops, peak_note

    # the same greedy generation again, its FLOPs counted (the counter slows what it counts, so not the timed run)
    _, flops = count_flops(lambda: generate(lm, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch,
                                            show_progress=False))
    print(f"compute: {peak_note(flops / seconds, lm.dtype, lm.device)}")
    encoder = load_text_encoder()
    vec = encoder.encode(["a quiet science-fiction film about memory"])
    print(f"text encoder: {type(encoder).__name__}, embedding dimension {vec.shape[1]}")
    return 0


# ---------------------------------------------------------------------------------------------- demo
def _demo(args: argparse.Namespace) -> int:
    """Each system on real data with the bundled models, briefly (``--sections`` picks some)."""
    from recllm.demo import SECTIONS, run_demo
    from recllm.errors import UserInputError

    sections = None if args.sections is None else [s for part in args.sections for s in part.split(",") if s]
    if sections == []:
        raise UserInputError("--sections names no section", "--sections",
                             "name one or more of baselines, impute, learn, trsr, serve, or leave --sections out")
    unknown = sorted(set(sections or ()) - set(SECTIONS))
    if unknown:
        raise UserInputError(f"unknown demo section(s) {unknown}", "--sections", f"choose from {', '.join(SECTIONS)}")
    if args.threads:  # 0 imports nothing here: the demo sets torch's OpenMP wait policy before torch loads
        from recllm.utils import set_threads

        set_threads(args.threads)
    return run_demo(seed=args.seed, show_progress=not args.quiet, sections=sections, full=args.full)


# ---------------------------------------------------------------------------------------------- cache
def _cache_root():
    """The cache folder as configured; listing or cleaning it never creates it (a mistyped $RECLLM_CACHE)."""
    from recllm.utils import cache_root

    return cache_root()


def _cache_list(args: argparse.Namespace) -> int:
    """The cache's areas with their sizes, or one area's entries."""
    from recllm.cache_areas import AREAS, area_entries, check_area, format_size, measure, usage

    root = _cache_root()
    when = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"  # noqa: E731
    if args.area:
        area = AREAS.get(args.area) or check_area(args.area)  # an unknown name: one line naming the areas
        print(f"{args.area}: {area.holds}\nremoving it: {area.cost}")
        for entry in area_entries(root, area):
            print(f"  {format_size(entry.size):>9s}  {when(entry.newest)}  {entry.path}")
        return 0
    print(f"cache folder: {root} (set RECLLM_CACHE to move it)")
    if not root.is_dir():
        print("it does not exist: recllm has cached nothing there yet")
        return 0
    print(f"{'area':16s} {'size':>9s} {'entries':>7s}  {'last written':16s}  holds")
    areas = usage(root)
    for part in areas:
        print(f"{part.name:16s} {format_size(part.size):>9s} {len(part.entries):7d}  {when(part.newest):16s}  "
              f"{part.area.holds}" + ("" if part.area.cleanable else " (never cleaned)"))
    total = measure(root).size
    print(f"{'total':16s} {format_size(total):>9s}          (other files: "
          f"{format_size(max(0, total - sum(p.size for p in areas)))})")
    print("`recllm cache list AREA` lists an area's entries; `recllm cache clean AREA` removes them")
    return 0


def _cache_clean(args: argparse.Namespace) -> int:
    """Remove the entries of some areas (see :func:`recllm.cache_areas.clean`)."""
    from recllm.cache_areas import clean, format_size

    removed, kept = clean(_cache_root(), args.areas, older_than_days=args.older_than, force=args.force,
                          dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for entry in removed:
        print(f"{verb} {format_size(entry.size):>9s}  {entry.path}")
    for entry, why in kept:
        print(f"kept  {format_size(entry.size):>9s}  {entry.path} ({why})")
    count = lambda n: f"{n} entr{'y' if n == 1 else 'ies'}"  # noqa: E731
    print(f"{verb} {count(len(removed))}, {format_size(sum(e.size for e in removed))}; kept {count(len(kept))}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``recllm <command>: error: ...``, exit 2) instead of usage + error."""

    _line: list[str] = []

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        self._line = list(sys.argv[1:] if args is None else args)  # for error(): the words this parser was given
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        options = self._line[:self._line.index("--")] if "--" in self._line else self._line  # after --: no option
        dashed = next((word for word in options if word.startswith("-") and len(word) > 1 and os.path.lexists(word)),
                      None)
        if dashed is not None and ("required" in message or "unrecognized" in message or dashed in message):
            what = "a folder" if os.path.isdir(dashed) else "a file"  # read as an option, it went missing
            message = (f"{message}; {dashed!r} was read as an option, and it is {what}: write it ./{dashed} "
                       "(or put it after --)")
        hint = "" if ";" in message else f"; see `{self.prog} --help`"
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``recllm`` parser. Given the command line ``argv`` of a ``recllm bench <name>`` run, only that benchmark's
    module is imported (no system plugin, no other benchmark), so a stored run's code identity
    (:mod:`recllm.bench.runs`) holds just the modules the benchmark uses."""
    only = _benchmark_named(argv)
    parser = _Parser(prog="recllm", description="Large language models inside recommender systems.")
    parser.add_argument("--seed", type=seed_arg, default=0, help="random seed (the same seed gives the same numbers)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (accepted anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="list, inspect and prepare data sets").add_subparsers(dest="data", required=True)
    data.add_parser("list", help="known data sets and where they are looked for").set_defaults(func=_data_list)
    info = data.add_parser("info", help="counts and schema of a data set, or check a folder of your own files",
                           description=_DATA_FOLDER_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("name", help="a data set of `recllm data list`, or a data folder (a path)")
    info.set_defaults(func=_data_info)
    prep = data.add_parser("prepare", help="download if missing, verify, parse and cache as parquet")
    prep.add_argument("name")
    prep.set_defaults(func=_data_prepare)

    llm = sub.add_parser("llm", help="language-model utilities").add_subparsers(dest="llm", required=True)
    check = llm.add_parser("check", help="load the bundled models, print one generation and the throughput")
    check.add_argument("--model", default=None, help="HF id or folder (default: bundled SmolLM2-135M-Instruct)")
    check.add_argument("--dtype", default="auto", help="model precision: auto (default: the machine's policy, printed "
                       "first) or a named one (a wrong name lists the choices)")
    check.add_argument("--batch", type=positive_int, default=8)
    check.add_argument("--max-new-tokens", type=positive_int, default=32)
    check.add_argument("--threads", type=thread_count, default=0, help="torch threads (0: torch's default)")
    check.set_defaults(func=_llm_check)

    demo = sub.add_parser("demo", help="run the main job on real data with the bundled models")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--threads", type=thread_count, default=0,
                      help="torch / BLAS threads (0: the libraries' defaults)")
    demo.add_argument("--sections", nargs="*", default=None,
                      help="run only these sections: baselines, impute, learn, trsr, serve (default: all)")
    demo.add_argument("--full", action="store_true",
                      help="every section at its full size (default: each LLM step sized to fit its time budget "
                           "at the speed a short probe measures on this machine)")
    demo.set_defaults(func=_demo)

    cache = sub.add_parser("cache", help="what recllm keeps in its cache folder, and removing parts of it")
    cache_cmds = cache.add_subparsers(dest="cache", required=True)
    listing = cache_cmds.add_parser("list", help="each area's size, or one area's entries")
    listing.add_argument("area", nargs="?", default=None, help="list this area's entries (default: every area)")
    listing.set_defaults(func=_cache_list)
    cleaning = cache_cmds.add_parser("clean", help="remove the entries of one or more areas (never the data sets)")
    cleaning.add_argument("areas", nargs="+", help="the areas to clean (`recllm cache list` names them)")
    cleaning.add_argument("--older-than", type=non_negative_float, default=0.0, metavar="DAYS",
                          help="only entries last written more than DAYS days ago (default: 0, every entry)")
    cleaning.add_argument("--force", action="store_true",
                          help="also remove entries written in the last 15 minutes (a running job may be using them)")
    cleaning.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    cleaning.set_defaults(func=_cache_clean)

    bench = sub.add_parser("bench", help="run a benchmark and write docs/results/*.md").add_subparsers(
        dest="bench", required=True
    )
    for module_name in () if only else PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that system is not built yet
        module.register_cli(sub, bench)
    from recllm.bench import register_cli as register_benchmarks

    register_benchmarks(bench, only=only)  # each checks its --out report and the git tree before any work
    _name_commands(parser)
    return parser


def _benchmark_named(argv: list[str] | None) -> str | None:
    """``<name>`` when ``argv`` runs ``recllm bench <name>`` for a registered benchmark, else None."""
    from recllm.bench import BENCHMARKS

    words, rest = [], list(argv or ())
    while rest:
        word = rest.pop(0)
        if word == "--seed" and rest:  # the top-level option's value is not a command word
            rest.pop(0)
        elif not word.startswith("-"):
            words.append(word)
    if len(words) >= 2 and words[0] == "bench" and words[1] in BENCHMARKS:
        return words[1]
    return None


def _name_commands(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Give every leaf subcommand a ``_command`` default ("learn train") for its one-line messages."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                _name_commands(sub, f"{prefix} {name}".strip())
            return
    parser.set_defaults(_command=prefix)


def _quiet_libraries() -> None:
    """``--quiet``: no progress bars from transformers (weight loading) or huggingface_hub either."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # transformers is a dependency; this only guards a broken install's error message
        pass


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The message and exit code for an exception: 2 for a user mistake, 1 for an internal failure."""
    from recllm.errors import UserInputError

    if isinstance(exc, UserInputError):
        return str(exc), 2
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        if exc.filename is not None and exc.strerror:
            return f"{exc.strerror.lower()} ({exc.filename}); check the path and its permissions", 2
        return str(exc), 2
    import sqlite3

    if type(exc) is OSError and isinstance(exc.__cause__, sqlite3.DatabaseError):
        return str(exc), 2  # the recllm cache file is locked or damaged: its message says what to do
    return (f"internal error: {type(exc).__name__}: {_one_line(exc) or 'no message'}; rerun with --debug for the "
            "traceback and report it"), 1


def _quiet_stdout() -> None:
    """After a closed pipe: send what is left of stdout to devnull, so exit does not complain (Python docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (e.g. captured in tests)
        pass


def _warning_formatter(command: str) -> Callable[..., str]:
    """Warnings as one line, ``recllm <command>: warning: <message>`` (no source line that looks like a traceback)."""
    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 - warnings' signature
        return f"{command}: warning: {_one_line(message)}\n"

    return format_warning


def main(argv: list[str] | None = None) -> int:
    """Run ``recllm`` with ``argv`` (default: the process's arguments); returns the exit code."""
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command, previous_format = "recllm", warnings.formatwarning
    try:
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit as done:  # --help, or argparse's one-line error (already printed)
            return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
        command = " ".join(["recllm", getattr(args, "_command", "")]).strip()
        warnings.formatwarning = _warning_formatter(command)
        if getattr(args, "quiet", False):
            _quiet_libraries()
        from recllm.cli_args import check_folder_settings

        check_folder_settings()
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, like a command killed by the closed pipe
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line; --debug shows the traceback
        if debug:
            raise
        message, code = _error_line(exc)
        print(f"{command}: error: {_one_line(message)}", file=sys.stderr)
        return code
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
