"""``recllm serve``: the real-time service over a LEARN run (and optionally a TRSR run and an imputer).

    recllm serve --learn runs/learn-ml100k [--trsr runs/trsr-ml100k [--max-reranks 4]] [--imputer mean:users.csv]
                 [--db sqlite:///serve.db] [--host 127.0.0.1 --port 8000] [--token T]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from recllm.cli_args import port_number, positive_int, thread_count
from recllm.errors import UserInputError
from recllm.serve.rerank import MAX_RERANKS

__all__ = ["register_cli", "load_service"]

DB_NAME = "serve.db"


def _need_extra() -> None:
    missing = []
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UserInputError(f"recllm serve needs {', '.join(missing)}, which is not installed", "recllm serve",
                             "pip install 'recllm[serve]'")


def _catalogue_texts(data: str, item_ids: list[str], columns: tuple[str, ...] | None = None) -> list[str] | None:
    """The catalogue's item texts from the data the artifact was trained on: a data set name or a data folder
    (``None`` when it is not at hand)."""
    from recllm.data.folder import load_if_present

    dataset = load_if_present(data) if data else None
    if dataset is None:
        return None
    if [str(i) for i in dataset.items["item_id"]] != item_ids:
        warnings.warn(f"data set {data!r} lists other items than the artifact; item texts are not shown")
        return None
    return dataset.item_texts(columns) if columns is not None else dataset.item_texts()


def load_service(learn: str | Path, trsr: str | Path | None = None, imputer: str | None = None,
                 db: str | None = None, token: str = "", encoder: bool = True, quiet: bool = True,
                 max_reranks: int = MAX_RERANKS) -> Any:
    """Load the models and the store, restore the state, and build the app (see :func:`recllm.serve.app.
    create_app`); the times of each load are exported in /metrics. A leading ``~`` in ``learn``, ``trsr`` or the
    ``imputer`` table is the home folder, as the command's checks take it."""
    from recllm.learn import load as load_learn
    from recllm.learn.artifact import artifact_config, trained_on
    from recllm.serve.app import create_app, restore
    from recllm.serve.metrics import ServeMetrics
    from recllm.serve.page import PAGE
    from recllm.serve.state import ServeState, make_content_encoder
    from recllm.serve.storage import open_store

    learn = Path(learn).expanduser()  # the folder the checks saw (check_input_dir expands ~)
    seconds: dict[str, float] = {}
    served_imputer = None
    if imputer is not None:  # first: a table that cannot be read stops the start before anything is loaded or made
        from recllm.serve.impute import TableImputer

        began = time.perf_counter()
        served_imputer = TableImputer.from_spec(imputer)
        seconds[f"imputer:{served_imputer.method}"] = time.perf_counter() - began
    meta = artifact_config(learn)  # checked (one line for a damaged file) before any model is loaded
    run = _trsr_run(trsr, trained_on(meta)) if trsr is not None else None
    began = time.perf_counter()
    retriever = load_learn(learn)
    seconds["learn"] = time.perf_counter() - began
    content_encoder = None
    if encoder and retriever.model.config.item_input != "id":
        began = time.perf_counter()
        content_encoder, name = make_content_encoder(retriever.model.config.content)
        seconds[f"content-encoder:{name}"] = time.perf_counter() - began
    texts = _catalogue_texts(trained_on(meta), retriever.item_ids)
    if run is not None and texts is None:  # before the store is opened (and, a new one, made)
        from recllm.data.folder import is_data_folder

        raise UserInputError(f"reranking needs the item texts of {run.data!r}, which are not at hand", "--trsr",
                             "put the data folder back where it was trained from" if is_data_folder(run.data) else
                             f"run `recllm data prepare {run.data}` (or set RECLLM_DATA)")
    state = ServeState(retriever, content_encoder, texts)
    if content_encoder is not None:
        try:
            state.encode(["a probe item"])
        except RuntimeError as exc:
            raise UserInputError(str(exc), f"--learn {learn}", "retrain the artifact or fix its content model "
                                 "(config.json: config.content)") from None
    store = open_store(db, learn / DB_NAME)
    began = time.perf_counter()
    restore(state, store)
    seconds["restore"] = time.perf_counter() - began
    reranker = summaries = None
    if run is not None:
        reranker, summaries = _load_trsr(run, retriever.item_ids, state, store, seconds)
    return create_app(state, store, token, reranker=reranker, summaries=summaries, imputer=served_imputer,
                      metrics=ServeMetrics(), load_seconds=seconds, page=PAGE, max_reranks=max_reranks)


def _trsr_run(folder: str | Path, dataset: str) -> Any:
    """The TRSR run in ``folder``, checked to be of the LEARN run's data set."""
    from recllm.trsr.run import read_run

    run = read_run(folder)
    if run.data != dataset:
        raise UserInputError(f"the TRSR run was trained on {run.data!r}, the LEARN run on {dataset!r}", "--trsr",
                             "serve two runs of the same data set")
    return run


def _load_trsr(run: Any, item_ids: list[str], state: Any, store: Any, seconds: dict[str, float]
               ) -> tuple[Any, Any]:
    from recllm.llm import load_causal_lm
    from recllm.llm.sft import load_adapter
    from recllm.serve.rerank import LLMReranker, SummaryKeeper
    from recllm.trsr.segment import render_item_texts

    texts = _catalogue_texts(run.data, item_ids, run.config.item_text_columns)
    if texts is None:  # the same data set gave the LEARN side its texts: only if it changed meanwhile
        raise UserInputError(f"reranking needs the item texts of {run.data!r}, which could not be read", "--trsr",
                             "check the data set's files")
    began = time.perf_counter()
    summarizer = load_causal_lm(run.model)
    ranker_lm = load_adapter(load_causal_lm(run.model), run.adapter)
    seconds["trsr"] = time.perf_counter() - began
    if not run.config.ranker.guarded:
        warnings.warn("the TRSR run was trained without --guarded; the service ranks with the guarded prompt, "
                      "so serve a run trained with --guarded (and --inject-fraction) for the best ranking")
    budget = run.config.summarizer.segment.item_tokens

    @functools.lru_cache(maxsize=100_000)
    def text(position: int) -> str:
        raw = texts[position] if position < len(texts) else state.text(position)
        return render_item_texts([raw], summarizer.tokenizer, budget)[0]

    summaries = SummaryKeeper(summarizer, run.config.summarizer, store, state.history, text)
    return LLMReranker(ranker_lm, run.config, summaries, text), summaries


def check_listen(host: str, port: int) -> None:
    """A one-line error, before any model is loaded, when ``host`` does not resolve, is not an address of this
    machine, or ``port`` is taken on one of its addresses (uvicorn binds every address the host resolves to)."""
    import errno
    import socket

    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserInputError(f"cannot resolve the host {host!r} ({exc.strerror})", "--host",
                             "give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    for family, kind, proto, _, address in dict.fromkeys((f, k, p, "", a) for f, k, p, _, a in found):
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (e.g. no IPv6): asyncio skips it too
            continue
        try:
            with probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is free
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio binds it
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UserInputError(f"cannot listen on {host}: {address[0]} is not an address of this machine "
                                     f"({exc.strerror})", "--host",
                                     "give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
            raise UserInputError(f"cannot listen on {host}:{port} ({exc.strerror})", "--port",
                                 "choose a free port, or stop the program listening there") from None


def _serve(args: argparse.Namespace) -> int:
    from recllm.cli_args import check_input_dir
    from recllm.serve.auth import resolve_token

    _need_extra()
    token, generated = resolve_token(args.token, args.host)
    learn = check_input_dir(args.learn, "--learn", "LEARN run", needs="config.json",  # ~ expanded: used below
                            todo="give a folder written by `recllm learn train --out DIR`")
    trsr = None
    if args.trsr is not None:
        trsr = check_input_dir(args.trsr, "--trsr", "TRSR run", needs="trsr_config.json",
                               todo="give a folder written by `recllm trsr train --out DIR`")
    from recllm.serve.storage import check_store

    check_store(args.db, learn / DB_NAME)
    check_listen(args.host, args.port)
    if args.imputer is not None:
        from recllm.serve.impute import check_spec

        check_spec(args.imputer)
    if args.threads:
        from recllm.utils import set_threads

        set_threads(args.threads)
    import uvicorn

    app = load_service(learn, trsr, args.imputer, args.db, token, encoder=not args.no_encoder,
                       quiet=args.quiet, max_reranks=args.max_reranks)
    if generated:
        print(f"recllm serve: write token (generated for this run): {token}", file=sys.stderr, flush=True)
    print(f"recllm serve: listening on http://{args.host}:{args.port} (API docs at /docs)", file=sys.stderr,
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info",
                limit_concurrency=args.max_connections, timeout_graceful_shutdown=5)
    return 0


def register_cli(sub: argparse._SubParsersAction, bench: argparse._SubParsersAction) -> None:
    """Add ``recllm serve``."""
    p = sub.add_parser("serve", help="a real-time recommendation service (HTTP, FastAPI) over trained runs")
    p.add_argument("--learn", required=True, help="LEARN run folder (`recllm learn train --out DIR`)")
    p.add_argument("--trsr", default=None, help="TRSR run folder: enables rerank=llm and user summaries")
    p.add_argument("--imputer", default=None, help="METHOD:TABLE, e.g. mean:users.csv: POST /impute fills rows "
                   "with METHOD (zero, mean, knn, mice) fitted on TABLE at start-up")
    p.add_argument("--db", default=None, help=f"database URL (default: sqlite:///<--learn>/{DB_NAME}); "
                   "sqlite:///relative.db or sqlite:////absolute.db")
    p.add_argument("--host", default="127.0.0.1", help="bind address (not loopback: needs --token)")
    p.add_argument("--port", type=port_number, default=8000)
    p.add_argument("--token", default=None, help="bearer token of the write endpoints (default: $RECLLM_TOKEN; "
                   "on loopback without one, a random token is generated and printed)")
    p.add_argument("--no-encoder", action="store_true",
                   help="do not load the content encoder (faster start; POST /items is refused)")
    p.add_argument("--max-connections", type=positive_int, default=256,
                   help="concurrent connections before the server answers 503")
    p.add_argument("--max-reranks", type=positive_int, default=MAX_RERANKS,
                   help="LLM requests (rerank=llm, first summaries) in flight (one runs, the others wait) before "
                   f"the next gets 503 with Retry-After (default {MAX_RERANKS})")
    p.add_argument("--threads", type=thread_count, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="warnings only in the server log")
    p.set_defaults(func=_serve)
