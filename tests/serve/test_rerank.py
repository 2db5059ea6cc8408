"""LLM reranking (guarded prompt, P(Yes) order) and recurrent summaries kept current block by block (tiny LM)."""

import dataclasses

import numpy as np
import pytest
from serve_helpers import AUTH, tiny_llm_parts


@pytest.fixture
def llm_client(make_app):
    from fastapi.testclient import TestClient

    parts, holder = tiny_llm_parts()
    app, state, store = make_app(parts=parts)
    summaries = holder["summaries"]
    with TestClient(app, raise_server_exceptions=False) as c:
        c.state, c.store, c.lm, c.config, c.text, c.summaries = (state, store, holder["lm"], holder["config"],
                                                                 holder["text"], summaries)
        yield c
    summaries.stop()


def test_rerank_orders_the_retrieved_candidates_by_p_yes_with_the_guarded_prompt(llm_client):
    from recllm.trsr.ranker import LLMRanker, RankQuery

    c = llm_client
    body = c.get("/recommend", params={"user": "u3", "k": 4, "rerank": "llm", "candidates": 8}).json()
    plain = [row["item"] for row in c.get("/recommend", params={"user": "u3", "k": 8}).json()["items"]]
    items = [row["item"] for row in body["items"]]
    assert len(items) == 4 and set(items) <= set(plain)
    p = [row["p_yes"] for row in body["items"]]
    assert p == sorted(p, reverse=True)
    # the same P(Yes) from the ranker with the guarded prompt, the user's summary and recent items
    guarded = dataclasses.replace(c.config.ranker, guarded=True)
    ranker = LLMRanker(c.lm, guarded, fine_tune=False, show_progress=False).fit([], [], [])
    hist = c.state.history("u3")
    summary = c.get("/users/u3/summary").json()
    query = RankQuery(summary["summary"], tuple(c.text(int(i)) for i in hist[-guarded.n_recent:]))
    expected = ranker.score([query], [[c.text(c.state.item_pos[i]) for i in plain]], use_cache=False)[0]
    order = np.argsort(-expected, kind="stable")[:4]
    assert items == [plain[j] for j in order]
    assert p == pytest.approx([float(expected[j]) for j in order], abs=1e-5)
    assert body["summary_version"] == summary["version"] == 1


def test_summary_is_updated_once_per_completed_block_from_the_old_summary(llm_client):
    from recllm.trsr.summarize import recurrent_update

    c = llm_client
    first = c.get("/users/u3/summary").json()
    assert (first["version"], first["covered"], first["history_length"]) == (1, 9, 10)
    # two new events: 12 items, blocks [0:3], ..., [9:12] -> complete; one more block covered
    for n, item in enumerate(["i1", "i2"]):
        event = {"user": "u3", "item": item, "timestamp": 10_000 + n, "idempotency_key": f"s{n}"}
        assert c.post("/events", json=event, headers=AUTH).status_code == 201
    assert c.summaries.wait(60)
    second = c.get("/users/u3/summary").json()
    assert (second["version"], second["covered"], second["history_length"]) == (2, 12, 12)
    hist = c.state.history("u3")
    block = [c.text(int(i)) for i in hist[9:12]]
    assert second["summary"] == recurrent_update(c.lm, first["summary"], block, c.summaries.config)
    # one event more: no complete block, no update
    event = {"user": "u3", "item": "i4", "timestamp": 20_000, "idempotency_key": "s9"}
    assert c.post("/events", json=event, headers=AUTH).status_code == 201
    assert c.summaries.wait(60)
    assert c.get("/users/u3/summary").json()["version"] == 2
    assert c.store.get_summary("u3").covered == 12


def test_a_block_completed_during_an_update_is_summarised_too(llm_client, monkeypatch):
    """An event completing a block while the worker updated that user was dropped (the user was still "pending",
    and the running update had read the history before it): the summary stayed a block behind."""
    import threading

    import recllm.trsr.summarize as summarize

    c = llm_client
    assert c.get("/users/u3/summary").json()["covered"] == 9
    entered, release, real = threading.Event(), threading.Event(), summarize.recurrent_update

    def slow_update(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        entered.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(summarize, "recurrent_update", slow_update)

    def post(items, start):  # noqa: ANN001, ANN202
        for n, item in enumerate(items):
            event = {"user": "u3", "item": item, "timestamp": 10_000 + start + n, "idempotency_key": f"r{start + n}"}
            assert c.post("/events", json=event, headers=AUTH).status_code == 201

    post(["i1", "i2"], 0)  # 12 items: the block [9:12] is complete, the worker starts on it
    assert entered.wait(60)
    post(["i4", "i5", "i6"], 2)  # 15 items while it runs: the block [12:15] is complete too
    release.set()
    assert c.summaries.wait(60)
    done = c.get("/users/u3/summary").json()
    assert (done["version"], done["covered"], done["history_length"]) == (3, 15, 15)
    metrics = c.get("/metrics").text
    assert "recllm_summary_updates_total 2.0" in metrics  # one per recurrent step (was never counted)


def test_recurrent_updates_equal_the_recurrent_summariser_over_the_whole_history():
    """What the service does block by block is what summarize_histories(mode="recurrent") does in one go."""
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.trsr.segment import SegmentConfig
    from recllm.trsr.summarize import SummarizerConfig, recurrent_update, summarize_histories

    lm = tiny_causal_lm()
    config = SummarizerConfig(mode="recurrent", max_new_tokens=4, segment=SegmentConfig(block_size=2, item_tokens=8))
    texts = ["a red film", "a blue film", "a green show", "a red show", "a quiet book"]
    whole = summarize_histories(lm, [np.arange(5)], texts, config, show_progress=False)
    summary = ""
    for start in range(0, 5, 2):
        summary = recurrent_update(lm, summary, texts[start:start + 2], config)
        assert summary == whole.steps[0][start // 2]
    assert summary == whole.texts[0]


def test_request_flops_counts_the_ranker_on_the_service_objects(llm_client):
    """The load test's FLOPs per request: a rerank=llm request does the retrieval's work and the ranker's scoring of
    max(k, candidates) retrieved items, counted the way the route calls them, in the ranker's scoring precision; the
    same count twice (the summary is made before, outside the count)."""
    from recllm.llm.hardware import count_flops
    from recllm.serve.load import K, request_flops
    from recllm.trsr.ranker import RankQuery

    c = llm_client
    reranker = c.app.state.services["reranker"]
    services = {"state": c.state, "store": c.store, "reranker": reranker}
    summary = c.summaries.current("u3").text
    hist = c.state.history("u3")
    query = RankQuery(summary, tuple(c.text(int(i)) for i in hist[-reranker.ranker.config.n_recent:]))

    def scoring(n: int) -> float:
        texts = [[c.text(p) for p, _ in c.state.recommend("u3", n)]]
        return count_flops(lambda: reranker.ranker.score([query], texts, use_cache=False))[1]

    for candidates, scored in ((K + 2, K + 2), (K - 2, K)):  # the route retrieves max(k, candidates) to rerank
        first = request_flops(services, ["u3"], candidates)
        assert request_flops(services, ["u3"], candidates) == first
        none, llm = first["none"], first["llm"]
        assert none["dtype"] == "float32" and none["search_counted"] and none["flops"] > 0
        assert llm["dtype"] == reranker.ranker.lm_.dtype.split("+")[0]  # the scoring copy's precision
        assert llm["flops"] == pytest.approx(scoring(scored) + none["flops"])  # the same tower and search
    assert scoring(K + 2) > scoring(K)
