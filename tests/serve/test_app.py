"""The HTTP API on a tiny LEARN artifact: retrieval, new items, events, idempotency, auth, errors, metrics."""

import threading
import time

import numpy as np
import pytest
from serve_helpers import AUTH, TOKEN

from recllm.learn import load


def _items(response):
    assert response.status_code == 200, response.text
    return [row["item"] for row in response.json()["items"]]


def test_recommend_and_similar_match_the_artifact(client, artifact):
    retriever = load(artifact)
    expected = [i for i, _ in retriever.recommend("u3", 5)]
    assert _items(client.get("/recommend", params={"user": "u3", "k": 5})) == expected
    assert _items(client.get("/similar", params={"item": "i4", "k": 3})) == [i for i, _ in retriever.similar_items("i4", 3)]
    body = client.get("/recommend", params={"user": "u3", "k": 5}).json()
    assert body["history_length"] == len(retriever.history("u3"))
    assert all(row["text"].startswith("title: episode") for row in body["items"])


def test_new_item_is_retrievable_at_once_through_the_model_pipeline(client):
    item = {"id": "new-5", "text": {"title": "episode 5 of a blue series, re-release"}}
    assert client.post("/items", json=item).status_code == 401
    response = client.post("/items", json=item, headers=AUTH)
    assert response.status_code == 201, response.text
    state = client.state
    new, old = state.item_pos["new-5"], state.item_pos["i5"]
    # same raw content as i5 -> same whitened content row and the same item-tower vector (no retraining)
    np.testing.assert_allclose(state.vectors[new], state.vectors[old], atol=1e-5)
    similar = client.get("/similar", params={"item": "i5", "k": 3}).json()["items"]
    assert similar[0]["item"] == "new-5" and similar[0]["score"] == pytest.approx(1.0, abs=1e-4)
    # a user who has not seen i5 gets new-5 exactly where i5 stands
    ranked = _items(client.get("/recommend", params={"user": "u3", "k": 30}))
    if "i5" in ranked:
        assert abs(ranked.index("new-5") - ranked.index("i5")) == 1
    # posting it again is idempotent; another text under the same id, or a catalogue id, is a conflict
    again = client.post("/items", json=item, headers=AUTH)
    assert again.status_code == 200 and again.json()["created"] is False
    assert client.post("/items", json={"id": "new-5", "text": "episode 9"}, headers=AUTH).status_code == 409
    assert client.post("/items", json={"id": "i3", "text": "episode 9"}, headers=AUTH).status_code == 409
    assert state.n_items == 31
    metrics = client.get("/metrics").text
    assert "recllm_item_first_appearance_seconds_count 1.0" in metrics
    assert "recllm_item_indexed_seconds_count 1.0" in metrics


def test_events_change_the_next_recommendation_and_are_idempotent(client):
    before = client.get("/recommend", params={"user": "u3", "k": 5}).json()
    top = before["items"][0]["item"]
    event = {"user": "u3", "item": top, "timestamp": 10_000, "idempotency_key": "k-1"}
    first = client.post("/events", json=event, headers=AUTH)
    assert first.status_code == 201, first.text
    replay = client.post("/events", json=event, headers=AUTH)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    after = client.get("/recommend", params={"user": "u3", "k": 5}).json()
    assert after["history_length"] == before["history_length"] + 1
    assert top not in [row["item"] for row in after["items"]]  # seen now, and the history moved on
    assert len(client.store.events()) == 1
    other = dict(event, item="i0")
    conflict = client.post("/events", json=other, headers=AUTH)
    assert conflict.status_code == 409 and "k-1" in conflict.json()["error"]
    # a new user exists from their first event on
    assert client.get("/recommend", params={"user": "newcomer"}).status_code == 404
    assert client.post("/events", json={"user": "newcomer", "item": "i7", "timestamp": 1.5, "idempotency_key": "k-2"},
                       headers=AUTH).status_code == 201
    assert len(_items(client.get("/recommend", params={"user": "newcomer", "k": 4}))) == 4


@pytest.mark.parametrize("method, path, kwargs, code", [
    ("get", "/recommend", {"params": {"user": "u3", "k": "ten"}}, 422),
    ("get", "/recommend", {"params": {"user": "u3", "k": 0}}, 422),
    ("get", "/recommend", {"params": {"k": 3}}, 422),
    ("get", "/recommend", {"params": {"user": "u3", "rerank": "magic"}}, 422),
    ("get", "/recommend", {"params": {"user": "u3", "rerank": "llm"}}, 400),  # not started with --trsr
    ("get", "/recommend", {"params": {"user": "nobody"}}, 404),
    ("get", "/similar", {"params": {"item": "no-such-item"}}, 404),
    ("get", "/users/u3/summary", {}, 400),  # not started with --trsr
    ("get", "/no/such/route", {}, 404),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "a"}}, 401),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "a"},
                         "headers": {"Authorization": "Bearer wrong-token-wrong-token"}}, 401),
    ("post", "/events", {"json": {"user": "u3", "item": "nope", "timestamp": 1, "idempotency_key": "a"},
                         "headers": AUTH}, 404),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": "noon", "idempotency_key": "a"},
                         "headers": AUTH}, 422),
    ("post", "/events", {"json": {"user": 3, "item": "i1", "timestamp": 1, "idempotency_key": "a"},
                         "headers": AUTH}, 422),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": 1}, "headers": AUTH}, 422),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "a", "x": 1},
                         "headers": AUTH}, 422),
    ("post", "/events", {"content": b"{not json", "headers": {**AUTH, "Content-Type": "application/json"}}, 400),
    ("post", "/items", {"json": {"id": "x", "text": "a" * (2 << 20)}, "headers": AUTH}, 413),
    ("post", "/items", {"json": {"id": "x", "text": ""}, "headers": AUTH}, 422),
    ("post", "/items", {"json": {"id": "x", "text": "   "}, "headers": AUTH}, 422),  # was 400, as were the next two
    ("post", "/items", {"json": {"id": "x", "text": {"title": ""}}, "headers": AUTH}, 422),
    ("post", "/items", {"json": {"id": "x", "text": {}}, "headers": AUTH}, 422),
    ("post", "/impute", {"json": {"rows": [{"a": 1}]}, "headers": AUTH}, 400),  # not started with --imputer
    ("post", "/events", {"content": b'{"user": "u3", "item": "i1", "timestamp": Infinity, "idempotency_key": "a"}',
                         "headers": {**AUTH, "Content-Type": "application/json"}}, 422),
    ("post", "/events", {"content": b'{"user": "u3", "item": "i1", "timestamp": NaN, "idempotency_key": "a"}',
                         "headers": {**AUTH, "Content-Type": "application/json"}}, 422),
    ("post", "/events", {"json": {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "a"},
                         "headers": {**AUTH, "Content-Length": "abc"}}, 400),
])
def test_bad_requests_get_the_documented_code_and_a_one_line_json_error(client, method, path, kwargs, code):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if code == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert not client.store.events()  # nothing stored by a refused write


@pytest.mark.parametrize("body, error", [
    (b'{"user": "u3", "item": "i1", "timestamp": Infinity, "idempotency_key": "a"}',
     "timestamp: non-finite number (NaN or Infinity); send a finite number"),
    (b'{"user": "u3", "item": "i1", "timestamp": 1e400, "idempotency_key": "a"}',  # parsed as Infinity
     "timestamp: non-finite number (NaN or Infinity); send a finite number"),
    (b'{"user": "u3", "item": "i1", "timestamp": -1, "idempotency_key": "a"}',
     "timestamp: Input should be greater than or equal to 0"),
    (b'{"id": "x", "text": "' + b"a" * 20_001 + b'"}',
     "text: should be a text of 1 to 20000 characters, or an object of such texts by field name"),
    (b'{"id": "x", "text": {"title": 5}}',
     "text: should be a text of 1 to 20000 characters, or an object of such texts by field name"),
])
def test_a_refused_body_names_the_field_in_plain_words(client, body, error):
    """One error per field in words, never pydantic's internal union tags (``text.constrained-str``)."""
    path = "/events" if b"timestamp" in body else "/items"
    response = client.post(path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json() == {"error": error}
    assert not client.store.events() and not client.store.items()


def test_an_invalid_content_length_is_a_bad_request_not_a_large_body(client):
    event = {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "a"}
    response = client.post("/events", json=event, headers={**AUTH, "Content-Length": "abc"})
    assert response.status_code == 400 and "invalid Content-Length" in response.json()["error"]


def test_health_answers_while_reranks_hold_every_thread_and_extra_reranks_get_503(make_app):
    """Slow rerank=llm requests must not starve /health (a liveness probe) nor every other route: at most
    ``max_reranks`` are in flight, the next ones are refused at once with 503 and Retry-After."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    release, entered = threading.Event(), []

    class StuckReranker:  # stands in for the LLM ranker (seconds per request), held until the test releases it
        def rerank(self, user, history, candidates):  # noqa: ANN001, ANN201
            entered.append(user)
            release.wait(60)
            return [(p, s, 0.5) for p, s in candidates], None

    requests = 45  # more than the 40 threads Starlette runs sync routes on
    app, _, _ = make_app(reranker=StuckReranker(), max_reranks=2)
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(requests + 1) as pool:
        try:
            pending = [pool.submit(c.get, "/recommend", params={"user": "u3", "rerank": "llm", "k": 3})
                       for _ in range(requests)]
            deadline = time.monotonic() + 30  # until each request is refused or reranking, or all 40 threads are
            while len(entered) + sum(f.done() for f in pending) < requests and len(entered) < 40:
                assert time.monotonic() < deadline, f"{len(entered)} reranks entered"
                time.sleep(0.02)
            began = time.perf_counter()
            health = pool.submit(c.get, "/health")
            assert health.result(timeout=10).status_code == 200 and time.perf_counter() - began < 5
            refused = [f.result() for f in pending if f.done()]
            assert len(entered) == 2 and len(refused) == requests - 2
            for response in refused:
                assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
                error = response.json()["error"]
                assert "2 rerank=llm requests are already in flight" in error and "\n" not in error
        finally:
            release.set()
        assert [f.result(timeout=30).status_code for f in pending].count(200) == 2
        assert c.get("/recommend", params={"user": "u3", "rerank": "llm", "k": 3}).status_code == 200  # slot freed
    with pytest.raises(ValueError, match="max_reranks must be a whole number of at least 1, got 0"):
        make_app(reranker=StuckReranker(), max_reranks=0)


def test_a_first_summary_takes_an_llm_slot_and_a_stored_one_none(make_app):
    """Making a user's first summary runs the LLM: it shares the ``max_reranks`` slots with rerank=llm (503 when
    they are full, nothing generated) -- a stored summary is read without one."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from recllm.serve.storage import StoredSummary

    release, entered, made = threading.Event(), [], []

    class StuckReranker:
        def rerank(self, user, history, candidates):  # noqa: ANN001, ANN201
            entered.append(user)
            release.wait(60)
            return [(p, s, 0.5) for p, s in candidates], None

    class Summaries:  # stands in for SummaryKeeper: u1's summary is stored, the others are made on first use
        queue_depth, on_error, on_update = 0, None, None

        def __init__(self) -> None:
            self.store = self
            self.stored = {"u1": StoredSummary("u1", "u1 likes films", 1, 4, 0.0)}

        def get_summary(self, user):  # noqa: ANN001, ANN201
            return self.stored.get(user)

        def current(self, user):  # noqa: ANN001, ANN201
            made.append(user)
            return self.stored.setdefault(user, StoredSummary(user, f"{user} summary", 1, 4, 0.0))

        def stop(self) -> None:
            pass

        def wait(self, timeout: float) -> bool:
            return True

    app, _, _ = make_app(reranker=StuckReranker(), summaries=Summaries(), max_reranks=1)
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(2) as pool:
        try:
            busy = pool.submit(c.get, "/recommend", params={"user": "u3", "rerank": "llm", "k": 3})
            deadline = time.monotonic() + 30
            while not entered:
                assert time.monotonic() < deadline and not busy.done()
                time.sleep(0.02)
            refused = c.get("/users/u3/summary")
            assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
            assert "1 LLM requests (rerank=llm, first summaries) are already in flight" in refused.json()["error"]
            assert made == []
            stored = c.get("/users/u1/summary")
            assert stored.status_code == 200 and stored.json()["summary"] == "u1 likes films"
        finally:
            release.set()
        assert busy.result(timeout=30).status_code == 200
        made_now = c.get("/users/u3/summary")
        assert made_now.status_code == 200 and made_now.json()["summary"] == "u3 summary" and made == ["u3"]


def test_a_streamed_oversized_body_is_refused(client):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = client.post("/items", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and set(response.json()) == {"error"}


def test_an_internal_error_is_a_one_line_500_without_traceback(client, monkeypatch, caplog):
    def broken(user, k):
        raise RuntimeError("secret detail\n  File \"/srv/x.py\", line 1")

    monkeypatch.setattr(client.state, "recommend", broken)
    response = client.get("/recommend", params={"user": "u3"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the server log"}
    assert "secret" not in response.text


def test_metrics_are_prometheus_text(client):
    from prometheus_client.parser import text_string_to_metric_families

    client.get("/recommend", params={"user": "u3"})
    client.get("/recommend", params={"user": "nobody"})
    client.post("/events", json={}, headers=AUTH)
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    requests = {(s.labels["route"], s.labels["code"]): s.value for s in families["recllm_requests"].samples
                if s.name == "recllm_requests_total"}
    assert requests[("/recommend", "200")] == 1 and requests[("/recommend", "404")] == 1
    assert requests[("/events", "422")] == 1
    assert "recllm_request_seconds" in families and "recllm_summary_queue_depth" in families
    assert families["recllm_catalogue_items"].samples[0].value == 30


def test_a_database_with_items_this_model_cannot_hold_is_refused_on_restore(make_app, tmp_path):
    """An added item stored by another LEARN run (another content width) was a 500-like "internal error" broadcast
    failure at start; an added id that is a catalogue id here was dropped silently."""
    from recllm.errors import UserInputError
    from recllm.serve.storage import SQLiteStore

    _, state, _ = make_app(tmp_path / "probe.db")
    width = state.content_width
    for name, item, vector, message in (
            ("narrow.db", "n1", np.ones(width - 1, np.float32), rf"stored content vector has shape \({width - 1},\)"),
            ("nan.db", "n1", np.full(width, np.nan, np.float32), "stored content vector"),
            ("clash.db", state.item_ids[0], np.ones(width, np.float32), "trained catalogue has an item of that id")):
        store = SQLiteStore(tmp_path / name)
        store.add_item(item, "some text", {"text": "some text"}, vector)
        store.close()
        with pytest.raises(UserInputError, match=message):
            make_app(tmp_path / name)


def test_an_event_a_retried_write_stored_is_applied_once(make_app, monkeypatch):
    """A PostgreSQL write retried after a dropped connection finds the event its first attempt committed and says
    "not new": the service answered a replay and never put the event in the user's history."""
    from fastapi.testclient import TestClient

    app, state, store = make_app()
    real = store.add_event

    def committed_then_retried(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        event, _ = real(*args, **kwargs)
        return event, False

    monkeypatch.setattr(store, "add_event", committed_then_retried)
    with TestClient(app) as c:
        before = len(state.history("u3"))
        event = {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "lost-ack"}
        assert c.post("/events", json=event, headers=AUTH).status_code == 201
        assert len(state.history("u3")) == before + 1
        again = c.post("/events", json=event, headers=AUTH)  # the client's own retry: a replay, applied once
        assert again.status_code == 200 and len(state.history("u3")) == before + 1


def test_a_store_that_cannot_be_reached_is_a_503_to_retry(make_app, monkeypatch):
    from fastapi.testclient import TestClient

    from recllm.serve.storage import StoreUnavailable

    app, _, store = make_app()

    def unreachable(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise StoreUnavailable("the PostgreSQL server cannot be reached (connection refused)")

    monkeypatch.setattr(store, "add_event", unreachable)
    with TestClient(app, raise_server_exceptions=False) as c:
        event = {"user": "u3", "item": "i1", "timestamp": 1, "idempotency_key": "k"}
        response = c.post("/events", json=event, headers=AUTH)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.json() == {"error": "the PostgreSQL server cannot be reached (connection refused); retry the "
                                            "request (with the same idempotency key) later"}


def test_restart_from_the_same_database_keeps_events_and_items_once(make_app, tmp_path):
    from fastapi.testclient import TestClient

    db = tmp_path / "restart.db"
    app, state, store = make_app(db)
    with TestClient(app) as c:
        assert c.post("/items", json={"id": "n1", "text": "episode 12 again"}, headers=AUTH).status_code == 201
        for n, item in enumerate(["i1", "n1", "i2"]):
            event = {"user": "u5", "item": item, "timestamp": n, "idempotency_key": f"e{n}"}
            assert c.post("/events", json=event, headers=AUTH).status_code == 201
        expected = c.get("/recommend", params={"user": "u5", "k": 8}).json()
    for _ in range(2):  # restart twice: nothing is replayed twice
        app, state2, store2 = make_app(db)
        with TestClient(app) as c:
            assert c.get("/recommend", params={"user": "u5", "k": 8}).json() == expected
            assert state2.n_items == 31 and state2.events["u5"] == [1, 30, 2]
            replay = {"user": "u5", "item": "i1", "timestamp": 0, "idempotency_key": "e0"}
            assert c.post("/events", json=replay, headers=AUTH).status_code == 200
            assert len(store2.events()) == 3 and len(store2.items()) == 1


def test_impute_fills_only_missing_cells(make_app, tmp_path):
    from fastapi.testclient import TestClient

    from recllm.errors import UserInputError
    from recllm.serve.impute import TableImputer

    table = tmp_path / "users.csv"
    table.write_text("age,city\n20,paris\n30,paris\n40,rome\n,rome\n", encoding="utf-8")
    imputer = TableImputer.from_spec(f"mean:{table}")
    with pytest.raises(UserInputError, match=r"row 0, column 'age' holds the non-finite number nan"):
        imputer.fill([{"age": float("nan"), "city": "rome"}])  # a library caller, past the API's validation
    app, _, _ = make_app(imputer=imputer)
    with TestClient(app, raise_server_exceptions=False) as c:
        rows = [{"age": None, "city": "lyon"}, {"age": 33.25, "city": None}, {"city": "rome"}]
        response = c.post("/impute", json={"rows": rows}, headers=AUTH)
        assert response.status_code == 200, response.text
        out = response.json()["rows"]
        assert out[0] == {"age": pytest.approx(30.0), "city": "lyon"}
        assert out[1] == {"age": 33.25, "city": "paris"}
        assert out[2]["city"] == "rome" and out[2]["age"] == pytest.approx(30.0)
        assert response.json()["filled"] == 3
        for number in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):  # never a null left "observed", uncounted
            body = b'{"rows": [{"age": %s, "city": "rome"}]}' % number
            response = c.post("/impute", content=body, headers={**AUTH, "Content-Type": "application/json"})
            assert response.status_code == 422, response.text
            assert response.json() == {"error": "rows.0.age: non-finite number (NaN or Infinity); send a finite number"}
        response = c.post("/impute", json={"rows": [{"age": [1], "city": "rome"}]}, headers=AUTH)
        assert response.json() == {"error": "rows.0.age: should be a string, a number, true, false or null"}
        bad = c.post("/impute", json={"rows": [{"age": "old"}]}, headers=AUTH)
        assert bad.status_code == 422 and "age" in bad.json()["error"]
        assert c.post("/impute", json={"rows": [{"zip": 1}]}, headers=AUTH).status_code == 422
        huge = b'{"rows": [{"age": 1%s, "city": "rome"}]}' % (b"0" * 400)  # an integer beyond float64: was a 500
        response = c.post("/impute", content=huge, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 422 and "integer too large for a float" in response.json()["error"]
        for value in (True, 1.0, 7):  # a text column's cells are text: str(True) == "True" is not the table's "true"
            response = c.post("/impute", json={"rows": [{"age": None, "city": value}]}, headers=AUTH)
            assert response.status_code == 422, response.text
            assert "'city' is a text column of users.csv" in response.json()["error"]
        assert c.post("/impute", json={"rows": rows}).status_code == 401


def test_a_lone_surrogate_is_refused_the_same_way_by_every_body(make_app, tmp_path):
    """JSON's "\\ud800" decodes to a lone surrogate: /impute answered 500 (pyarrow could not encode the cell) while
    /events and /items answered 422; now one check names the field for all three, and the store gets nothing."""
    from fastapi.testclient import TestClient

    from recllm.serve.impute import TableImputer

    table = tmp_path / "t1.csv"
    table.write_text("id,zip,price\n1,007,1.50\n2,,2.25\n3,010,\n", encoding="utf-8")
    app, _, store = make_app(imputer=TableImputer.from_spec(f"mean:{table}"))
    headers = {**AUTH, "Content-Type": "application/json"}
    cases = {
        "/impute": (rb'{"rows": [{"zip": "\ud800"}]}', "rows.0.zip"),
        "/events": (rb'{"user": "\ud800", "item": "i1", "timestamp": 1, "idempotency_key": "k"}', "user"),
        "/items": (rb'{"id": "new", "text": "\ud800"}', "text"),
    }
    with TestClient(app, raise_server_exceptions=False) as c:
        for path, (body, where) in cases.items():
            response = c.post(path, content=body, headers=headers)
            assert response.status_code == 422, (path, response.text)
            assert response.json() == {"error": f"{where}: not Unicode text (a lone surrogate such as \\ud800); "
                                                "send valid UTF-8 text"}
            nul = body.replace(rb"\ud800", rb"a\u0000b")  # valid JSON, but PostgreSQL's text refuses it: was a 500
            response = c.post(path, content=nul, headers=headers)
            assert response.status_code == 422, (path, response.text)
            assert response.json() == {"error": f"{where}: holds a NUL character (\\u0000), which a PostgreSQL "
                                                "store cannot keep; remove it"}
        response = c.post("/impute", content=rb'{"rows": [{"\ud800": "1"}]}', headers=headers)
        assert response.status_code == 422 and "not Unicode text" in response.json()["error"]
        response = c.post("/impute", json={"rows": [{"zip": "\u00e9t\U0001f600"}]}, headers=AUTH)  # real text
        assert response.status_code == 200 and response.json()["rows"][0]["zip"] == "\u00e9t\U0001f600"
        assert store.events() == [] and store.items() == []


def test_token_rules():
    from recllm.errors import UserInputError
    from recllm.serve.auth import check_bearer, resolve_token

    with pytest.raises(UserInputError, match="refusing"):
        resolve_token(None, "0.0.0.0")
    token, generated = resolve_token(None, "127.0.0.1")
    assert generated and len(token) >= 16
    assert resolve_token(TOKEN, "0.0.0.0") == (TOKEN, False)
    with pytest.raises(UserInputError, match="shorter"):
        resolve_token("short", "::1")
    assert check_bearer(f"Bearer {TOKEN}", TOKEN) and not check_bearer(TOKEN, TOKEN)
    assert not check_bearer(None, TOKEN)
    # the scheme is case-insensitive in HTTP (a client sending "bearer" got 401)
    assert check_bearer(f"bearer {TOKEN}", TOKEN) and check_bearer(f"BEARER  {TOKEN}", TOKEN)
    assert not check_bearer(f"Bearer{TOKEN}", TOKEN) and not check_bearer(f"Basic {TOKEN}", TOKEN)
    # headers arrive as latin-1: a non-ASCII token was accepted at start and then never matched (every write 401)
    for bad in ("p\u00e4ssw\u00f6rd-p\u00e4ssw\u00f6rd-1", "token-with-a-tab\there-0123"):
        with pytest.raises(UserInputError, match="other than visible ASCII"):
            resolve_token(bad, "127.0.0.1")


def test_page_is_self_contained():
    from recllm.serve.page import PAGE

    # no external resource (CDN, font, script) and no HTML built from item text
    assert "http://" not in PAGE and "https://" not in PAGE and "innerHTML" not in PAGE and "src=" not in PAGE
    assert PAGE.count("<script>") == 1 and "textContent" in PAGE
