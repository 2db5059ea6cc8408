"""The page at / in a real headless browser (Debian's chromium; skipped without it): it loads, a user's
recommendations render, an added item shows up in the list; a screenshot is saved with the test's files."""

import shutil
import socket
import subprocess
import threading
import time

import pytest
from conftest import AUTH

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


@pytest.fixture
def served(make_app):
    """The app (stand-in encoder) on a free loopback port, in a uvicorn thread stopped at the end."""
    import httpx
    import uvicorn

    from recllm.serve.page import PAGE

    app, state, store = make_app(page=PAGE)
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


def _browse(url: str, *flags: str) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--virtual-time-budget=20000", "--window-size=1280,900", *flags, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return done.stdout


def _listed(dom: str, list_id: str) -> list[str]:
    from html.parser import HTMLParser

    class Items(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.items = False, []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "ol":
                self.inside = attrs.get("id") == list_id
            elif tag == "li" and self.inside:
                self.items.append(attrs.get("data-item"))

    parser = Items()
    parser.feed(dom)
    return parser.items


def test_page_renders_a_users_recommendations_and_an_added_item(served, tmp_path):
    import httpx

    expected = [r["item"] for r in httpx.get(served + "/recommend", params={"user": "u3", "k": 10}).json()["items"]]
    dom = _browse(f"{served}/?user=u3&k=10", "--dump-dom")
    assert "recllm serve" in dom
    assert _listed(dom, "retrieved") == expected
    assert len(_listed(dom, "history")) == 10
    # add an item whose text encodes like the user's top item ("episode N"): it lands right beside it
    top = expected[0]
    response = httpx.post(served + "/items", json={"id": "page-new", "text": f"episode {top[1:]} again"},
                          headers=AUTH)
    assert response.status_code == 201
    dom = _browse(f"{served}/?user=u3&k=10", "--dump-dom")
    listed = _listed(dom, "retrieved")
    assert "page-new" in listed[:2]
    shot = tmp_path / "serve-page.png"
    _browse(f"{served}/?user=u3&k=10", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
