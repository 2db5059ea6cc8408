"""The FastAPI application of ``recllm serve`` (OpenAPI at /docs): routes, validation, errors, auth, metrics.

Errors are JSON ``{"error": "<one line>"}``: 400 bad request (malformed JSON, an option the service was not
started with, an invalid Content-Length), 401 missing or wrong bearer token on a write, 404 unknown user / item /
route, 409 an idempotency key or item id reused with another payload, 413 body over the limit, 422 wrong types or
values (non-finite numbers too), 503 with ``Retry-After`` when ``max_reranks`` LLM requests (``rerank=llm``, first
summaries) are already in flight or the store's server cannot be reached; anything else is a 500 with a one-line message (the traceback goes to the server log, never to the client).

/health and /metrics run on the event loop: they answer while every worker thread is busy (e.g. with reranks).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from recllm.errors import UserInputError
from recllm.learn.artifact import UnknownIdError
from recllm.serve.auth import check_bearer
from recllm.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from recllm.serve.rerank import MAX_RERANKS
from recllm.serve.state import ServeState, item_text
from recllm.serve.storage import EventStore, IdempotencyConflict, StoreUnavailable

__all__ = ["create_app", "restore", "MAX_BODY_BYTES"]

log = logging.getLogger("recllm.serve")
MAX_BODY_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------- request bodies
NON_FINITE = "non-finite number (NaN or Infinity); send a finite number"
NOT_TEXT = "not Unicode text (a lone surrogate such as \\ud800); send valid UTF-8 text"
NUL_CHAR = "holds a NUL character (\\u0000), which a PostgreSQL store cannot keep; remove it"


def _unicode(value: str) -> str:
    """``value`` when it is text UTF-8 can encode: a JSON escape like ``\\ud800`` decodes to a lone surrogate, which
    no table, file or database can store (pydantic refuses it only in strings with a length limit); nor a NUL
    character, which PostgreSQL's text refuses (so a request would be a 422 on one store and a 500 on the other)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("string_unicode", NOT_TEXT) from None
    if "\x00" in value:
        raise PydanticCustomError("string_nul", NUL_CHAR)
    return value


Text = Annotated[str, AfterValidator(_unicode)]  # every string of a request body is one (error type string_unicode)
Id = Annotated[Text, Field(min_length=1, max_length=256)]


def _one_of(expected: str) -> WrapValidator:
    """A union's errors as ONE error at the field, "should be <expected>" (pydantic names each member by an internal
    tag, e.g. ``text.constrained-str``); a non-finite number or a string that is not text among them is named as
    such."""
    def check(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            types = {e["type"] for e in exc.errors()}
            if "finite_number" in types:
                raise PydanticCustomError("finite_number", NON_FINITE) from None
            if "string_unicode" in types:
                raise PydanticCustomError("string_unicode", NOT_TEXT) from None
            if "string_nul" in types:
                raise PydanticCustomError("string_nul", NUL_CHAR) from None
            raise PydanticCustomError("union_type", f"should be {expected}") from None

    return WrapValidator(check)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ItemIn(_Body):
    id: Id
    text: Annotated[Annotated[Text, Field(min_length=1, max_length=20_000)]
                    | dict[Id, Annotated[Text, Field(max_length=20_000)]],
                    _one_of("a text of 1 to 20000 characters, or an object of such texts by field name")]


class EventIn(_Body):
    user: Id
    item: Id
    timestamp: Annotated[float, Field(ge=0)]  # a JSON integer is a float here too (strict mode allows it)
    idempotency_key: Id


Cell = Annotated[Text | int | float | bool | None, _one_of("a string, a number, true, false or null")]


class ImputeIn(_Body):
    rows: Annotated[list[dict[Text, Cell]], Field(min_length=1, max_length=10_000)]


# ---------------------------------------------------------------------------------------------- middleware
class _TooLarge(Exception):
    pass


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split()) or "error"}, status_code=status)


class GuardMiddleware:
    """Outermost layer: body-size limit (413), metrics by route template, and the last catch-all for errors."""

    def __init__(self, app: Any, metrics: ServeMetrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status, received, too_large = time.perf_counter(), [0], [0], [False]
        headers = dict(scope.get("headers") or [])

        async def limited() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    too_large[0] = True
                    raise _TooLarge
            return message

        async def sending(message: dict) -> None:
            if too_large[0]:  # the app caught _TooLarge as a parse error: its answer is replaced by the 413
                return
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        async def refuse(code: int, text: str) -> None:
            too_large[0] = False
            await _json(code, text)(scope, receive, sending)

        length = headers.get(b"content-length")
        try:
            if length is not None and not length.isdigit():
                await refuse(400, "invalid Content-Length header: send the body's size in bytes, or leave it out")
            elif length is not None and int(length) > self.max_body:
                raise _TooLarge
            else:
                await self.app(scope, limited, sending)
            if too_large[0] and not status[0]:
                await refuse(413, f"request body over {self.max_body} bytes")
        except _TooLarge:
            if not status[0]:
                await refuse(413, f"request body over {self.max_body} bytes")
        except Exception:  # noqa: BLE001 - nothing but a one-line message may reach the client
            log.exception("internal error on %s %s", scope.get("method"), scope.get("path"))
            if not status[0]:
                await refuse(500, "internal error; see the server log")
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope.get("method", "")
        self.metrics.requests.labels(route, method, str(status[0] or 500)).inc()
        self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "the request body is not valid JSON"
    first = errors[0] if errors else {}
    where = ".".join(str(p).encode("utf-8", "backslashreplace").decode("utf-8")  # a key that is not text
                     for p in first.get("loc", ()) if p != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = {"finite_number": NON_FINITE, "string_unicode": NOT_TEXT, "string_nul": NUL_CHAR}.get(
        first.get("type"), first.get("msg", "invalid value"))
    return 422, f"{where}: {message}{more}"


# ---------------------------------------------------------------------------------------------- state on restart
def restore(state: ServeState, store: EventStore) -> tuple[int, int]:
    """Replay the store into ``state``: added items, then events, in their order -> (items, events)."""
    items = store.items()
    width = state.content_width
    for item in items:  # all checked before the first is added: a refused database leaves the state as it was
        vector = np.asarray(item.vector)
        if width is None:
            problem = "this LEARN model has no content item inputs to place it with"
        elif vector.shape != (width,) or not np.isfinite(vector).all():
            problem = f"its stored content vector has shape {vector.shape}; this model's has ({width},)"
        elif state.item_pos.get(item.item, state.n_catalogue) < state.n_catalogue:
            problem = "this model's trained catalogue has an item of that id"
        else:
            continue
        raise UserInputError(f"the database holds the added item {item.item!r}, but {problem}", "--db",
                             "serve the database with the LEARN run it was written with")
    for item in items:
        state.add_item(item.item, item.text, item.vector)
    events = store.events()
    for event in events:
        if event.item not in state.item_pos:
            raise UserInputError(f"the database holds an event on item {event.item!r}, which this model lacks",
                                 "--db", "serve the database with the LEARN run it was written with")
        state.add_event(event.user, event.item, event.seq)
    return len(items), len(events)


def _then(first: Callable[..., Any], previous: Callable[..., Any] | None) -> Callable[..., None]:
    """A callback that calls ``first`` and then ``previous`` (a hook set before, if any) with the same arguments."""
    def call(*args: Any) -> None:
        first(*args)
        if previous is not None:
            previous(*args)

    return call


# ---------------------------------------------------------------------------------------------- the app
def create_app(state: ServeState, store: EventStore, token: str, *, reranker: Any = None, summaries: Any = None,
               imputer: Any = None, metrics: ServeMetrics | None = None, max_body: int = MAX_BODY_BYTES,
               load_seconds: dict[str, float] | None = None, page: str | None = None,
               max_reranks: int = MAX_RERANKS) -> FastAPI:
    """The service over ``state`` (already restored from ``store``) with writes guarded by ``token``; at most
    ``max_reranks`` LLM requests in flight (``rerank=llm`` and first summaries, running or waiting for the LLM), the
    next ones get 503."""
    if isinstance(max_reranks, bool) or not isinstance(max_reranks, int) or max_reranks < 1:
        raise ValueError(f"create_app: max_reranks must be a whole number of at least 1, got {max_reranks!r}")
    metrics = metrics or ServeMetrics()
    for model, seconds in (load_seconds or {}).items():
        metrics.model_load.labels(model).set(seconds)
    metrics.items.set_function(lambda: state.n_items)
    if summaries is not None:
        metrics.summary_queue.set_function(lambda: summaries.queue_depth)
        def failed(exc: BaseException) -> None:
            metrics.summary_errors.inc()
            log.error("summary update failed: %s: %s", type(exc).__name__, exc)

        summaries.on_error = _then(failed, summaries.on_error)
        summaries.on_update = _then(metrics.summary_updates.inc, summaries.on_update)
    posted: dict[int, float] = {}  # added item position -> when it was posted, until its first appearance
    rerank_slots = threading.BoundedSemaphore(max_reranks)
    rerank_seconds = [1.0]  # how long the last LLM request took: the Retry-After of a refused one

    @contextlib.contextmanager
    def llm_slot(what: str, otherwise: str) -> Iterator[None]:
        """Hold one of the ``max_reranks`` LLM slots while the body runs (and time it), or 503 at once: a request
        refused rather than queued holds no worker thread."""
        if not rerank_slots.acquire(blocking=False):
            retry = max(1, math.ceil(rerank_seconds[0]))
            raise HTTPException(503, f"{max_reranks} {what} are already in flight (the server's --max-reranks); "
                                f"retry in {retry} s, {otherwise}", headers={"Retry-After": str(retry)})
        began = time.perf_counter()
        try:
            yield
        finally:
            rerank_seconds[0] = time.perf_counter() - began
            rerank_slots.release()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if summaries is not None:  # pending summary updates finish (bounded), then the store closes
            summaries.stop()
            summaries.wait(timeout=10)
        store.close()

    app = FastAPI(lifespan=lifespan, title="recllm serve", version="1",
                  description="LEARN retrieval, LLM-TRSR reranking and summaries, new items and events in real time, "
                  "imputation.")
    app.state.services = {"state": state, "store": store, "reranker": reranker, "summaries": summaries,
                          "imputer": imputer, "metrics": metrics}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = _json(exc.status_code, exc.detail if isinstance(exc.detail, str) else "error")
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(*_validation_message(exc))

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("%s", exc)
        response = _json(503, f"{exc}; retry the request (with the same idempotency key) later")
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(IdempotencyConflict)
    async def conflict(request: Request, exc: IdempotencyConflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(UserInputError)
    async def bad_input(request: Request, exc: UserInputError) -> JSONResponse:
        return _json(400, str(exc))

    def authorized(request: Request) -> None:
        if not check_bearer(request.headers.get("authorization"), token):
            raise HTTPException(401, "missing or wrong bearer token: send `Authorization: Bearer <token>`",
                                headers={"WWW-Authenticate": "Bearer"})

    write = [Depends(authorized)]

    def listed(pairs: list[tuple[int, float]], extra: list[float] | None = None) -> list[dict[str, Any]]:
        now = time.perf_counter()
        out = []
        for j, (pos, score) in enumerate(pairs):
            posted_at = posted.pop(pos, None) if posted else None
            if posted_at is not None:
                metrics.first_appearance.observe(now - posted_at)
            row = {"item": state.item_ids[pos], "score": round(score, 6), "text": state.texts[pos]}
            if extra is not None:
                row["p_yes"] = round(extra[j], 6)
            out.append(row)
        return out

    @app.get("/health")
    async def health() -> dict[str, Any]:  # async: no worker thread needed, so it answers while reranks hold them
        return {"status": "ok", "items": state.n_items, "catalogue_items": state.n_catalogue,
                "users": state.n_users, "rerank": reranker is not None, "summaries": summaries is not None,
                "impute": imputer is not None}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/recommend")
    def recommend(user: Annotated[str, Query(min_length=1, max_length=256)],
                  k: Annotated[int, Query(ge=1, le=1000)] = 10,
                  rerank: Annotated[str, Query(pattern="^(none|llm)$")] = "none",
                  candidates: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
        if rerank == "llm" and reranker is None:
            raise HTTPException(400, "rerank=llm needs the service started with --trsr RUN")
        hist = state.history(user)
        body: dict[str, Any] = {"user": user, "history_length": int(len(hist)), "rerank": rerank}
        if rerank == "none":
            body["items"] = listed(state.recommend(user, k))
            return body
        retrieved = state.recommend(user, max(k, candidates))
        with llm_slot("rerank=llm requests", "or ask without rerank"):
            ranked, summary = reranker.rerank(user, hist, retrieved)
        body["items"] = listed([(p, s) for p, s, _ in ranked[:k]], [y for _, _, y in ranked[:k]])
        body["retrieved"] = [state.item_ids[p] for p, _ in retrieved[:k]]
        body["summary_version"] = summary.version if summary is not None else None
        return body

    @app.get("/similar")
    def similar(item: Annotated[str, Query(min_length=1, max_length=256)],
                k: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
        return {"item": item, "items": listed(state.similar(item, k))}

    @app.get("/users/{user}/history")
    def history(user: str) -> dict[str, Any]:
        hist = state.history(user)
        return {"user": user, "items": [{"item": state.item_ids[p], "text": state.texts[p]} for p in hist]}

    @app.get("/users/{user}/summary")
    def summary(user: str) -> dict[str, Any]:
        if summaries is None:
            raise HTTPException(400, "no summaries: start the service with --trsr RUN")
        hist = state.history(user)
        found = summaries.store.get_summary(user)
        if found is None:  # the LLM makes it now, in one of the LLM slots
            with llm_slot("LLM requests (rerank=llm, first summaries)", "or read it later"):
                found = summaries.current(user)
        return {"user": user, "summary": found.text, "version": found.version, "covered": found.covered,
                "history_length": int(len(hist)), "updated": found.updated}

    @app.post("/items", status_code=201, dependencies=write)
    def add_item(body: ItemIn, response: Response) -> dict[str, Any]:
        start = time.perf_counter()
        text = item_text(body.text)
        if not text:
            # a value error like "" (422 by validation): the same code for "   ", {"title": ""} and {}
            raise HTTPException(422, "text: the item's text is empty; send at least one non-empty text field")
        if state.item_pos.get(body.id, state.n_catalogue) < state.n_catalogue:
            raise IdempotencyConflict(f"item {body.id!r} is already in the trained catalogue", "id",
                                      "give the new item its own id")
        raw = state.encode([text])[0]
        fields = body.text if isinstance(body.text, dict) else {"text": body.text}
        with state.lock:  # the store's order is the state's order (restarts replay the store)
            stored, new = store.add_item(body.id, text, fields, raw)
            pos = state.add_item(stored.item, stored.text, stored.vector)
        seconds = time.perf_counter() - start
        if new:
            posted[pos] = start
            metrics.item_indexed.observe(seconds)
        else:
            response.status_code = 200
        return {"item": body.id, "text": text, "created": new, "indexed_seconds": round(seconds, 6)}

    @app.post("/events", status_code=201, dependencies=write)
    def add_event(body: EventIn, response: Response) -> dict[str, Any]:
        state.position(body.item)  # 404 before anything is stored
        with state.lock:  # the store's order is the histories' order (restarts replay the store)
            event, new = store.add_event(body.idempotency_key, body.user, body.item, float(body.timestamp))
            # an event stored by a retried write whose first answer was lost is new here, though stored already
            new = new or event.seq > state.last_event_seq
            if new:
                state.add_event(event.user, event.item, event.seq)
        if new:
            metrics.events.inc()
            if summaries is not None:
                summaries.notify(event.user)
        else:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return {"seq": event.seq, "user": event.user, "item": event.item, "timestamp": event.timestamp,
                "idempotency_key": event.key}

    @app.post("/impute", dependencies=write)
    def impute(body: ImputeIn) -> dict[str, Any]:
        if imputer is None:
            raise HTTPException(400, "no imputer: start the service with --imputer METHOD:TABLE")
        try:
            rows, filled = imputer.fill(body.rows)
        except UserInputError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"rows": rows, "filled": filled, "method": imputer.method}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        if page is None:
            raise HTTPException(404, "no page")
        return page

    app.add_middleware(GuardMiddleware, metrics=metrics, max_body=max_body)
    return app
