"""The page at / used in a real headless browser (Debian's chromium over the DevTools protocol; skipped without it):
pick a user, see the history, summary, retrieved and reranked lists render as the API answers, add an item through
the page's own form and see it land in the user's list; a screenshot is saved by the test run."""

import socket
import threading
import time

import pytest
from cdp import Browser, find_chromium
from serve_helpers import TOKEN, tiny_llm_parts

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")

LISTED = "[...document.querySelectorAll('#{0} li')].map((li) => li.dataset.item)"


@pytest.fixture
def served(make_app):
    """The app with the page, the tiny TRSR reranker and summaries, on a free loopback port (uvicorn thread)."""
    import httpx
    import uvicorn

    from recllm.serve.page import PAGE

    parts, holder = tiny_llm_parts()
    app, state, store = make_app(page=PAGE, parts=parts)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=30)
    holder["summaries"].stop()


@pytest.fixture
def browser():
    with Browser(CHROMIUM) as b:
        yield b


def _show_user(browser: Browser, url: str, user: str) -> None:
    """Open the page, type the user, tick "rerank with the LLM", press Show, wait for every list to fill."""
    browser.navigate(url + "/")
    browser.wait_for("document.getElementById('health').textContent.includes('LLM rerank on')")
    browser.type("#user", user)
    browser.click("#rerank")
    assert browser.evaluate("document.getElementById('rerank').checked")
    browser.click("#show")
    browser.wait_for("document.querySelectorAll('#reranked li').length === 10 && "
                     "document.getElementById('summary').textContent.includes('version')")


def test_page_shows_a_user_and_adds_an_item_through_its_form(served, browser, tmp_path):
    import httpx

    _show_user(browser, served, "u3")
    api = httpx.Client(base_url=served, timeout=60)
    history = [r["item"] for r in api.get("/users/u3/history").json()["items"]]
    retrieved = [r["item"] for r in api.get("/recommend", params={"user": "u3", "k": 10}).json()["items"]]
    reranked = api.get("/recommend", params={"user": "u3", "k": 10, "rerank": "llm"}).json()
    summary = api.get("/users/u3/summary").json()
    assert browser.evaluate(LISTED.format("history")) == history and len(history) == 10
    assert browser.evaluate(LISTED.format("retrieved")) == retrieved
    assert browser.evaluate(LISTED.format("reranked")) == [r["item"] for r in reranked["items"]]
    assert browser.evaluate("document.getElementById('summary').textContent") == \
        f"{summary['summary'] or '(none yet)'} (version {summary['version']})"
    assert "P(Yes)" in browser.evaluate("document.querySelector('#reranked li').textContent")

    # the page's own form: a new item whose text encodes like the user's top item ("episode N") lands beside it
    top = retrieved[0]
    browser.type("#new-id", "page-new")
    browser.type("#new-text", f"episode {top[1:]} again")
    browser.type("#token", TOKEN)
    browser.click("#add")
    added = browser.wait_for("document.getElementById('added').textContent")
    listed = browser.evaluate(LISTED.format("retrieved"))
    assert "page-new" in listed[:2] and top in listed[:2]
    assert added.startswith(f"added; rank {listed.index('page-new') + 1} for this user, ")
    assert browser.evaluate("document.querySelector('#retrieved li.new').dataset.item") == "page-new"
    assert browser.evaluate("document.getElementById('status').textContent") == ""
    # the server has it: the API ranks it where the page shows it, and the browser's POST carried the form's text
    after = [r["item"] for r in api.get("/recommend", params={"user": "u3", "k": 10}).json()["items"]]
    assert after == listed
    assert api.post("/items", json={"id": "page-new", "text": f"episode {top[1:]} again"},
                    headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200  # same id and text: exists

    shot = browser.screenshot(tmp_path / "serve-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_page_form_with_a_wrong_token_shows_the_error_and_adds_nothing(served, browser):
    import httpx

    _show_user(browser, served, "u3")
    before = browser.evaluate(LISTED.format("retrieved"))
    browser.type("#new-id", "page-refused")
    browser.type("#new-text", "episode 1 again")
    browser.type("#token", "not-the-token")
    browser.click("#add")
    status = browser.wait_for("document.getElementById('status').textContent")
    assert status.startswith("missing or wrong bearer token")
    assert browser.evaluate("document.getElementById('added').textContent") == ""
    assert browser.evaluate(LISTED.format("retrieved")) == before
    assert httpx.get(served + "/similar", params={"item": "page-refused"}).status_code == 404
