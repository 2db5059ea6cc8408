"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (no dependency, no network port).

Chromium reads protocol messages from file descriptor 3 and writes them to 4, each a JSON object ended by a NUL
byte. ``Browser`` starts headless chromium with a throw-away profile, opens one page target in flattened session
mode and offers what a browser test needs: navigate, evaluate JavaScript, wait for a condition, click an element
and type into it with real input events, and take a screenshot. Every wait has a deadline; ``close`` kills it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser", "CDPError", "find_chromium"]


class CDPError(RuntimeError):
    """A protocol error, a JavaScript exception, a browser that died or a wait past its deadline."""


def find_chromium() -> str | None:
    """Debian's chromium (or another Chrome-like binary on PATH), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are numbered 10 or more (never 3 or 4, which the browser's ends become)."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Browser:
    """Headless chromium driven over a CDP pipe; a context manager."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="recllm-cdp-")
        to_browser_r, self._to_browser = _high_pipe()
        self._from_browser, from_browser_w = _high_pipe()
        # bash moves the browser's pipe ends onto 3 and 4 and execs it (no preexec_fn, which is unsafe beside the
        # server's threads; dash cannot name descriptors above 9)
        move = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        command = [shutil.which("bash") or "/bin/bash", "-c", move, "bash", binary, "--headless", "--no-sandbox",
                   "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "--no-first-run",
                   "--no-default-browser-check", f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(to_browser_r, from_browser_w),
                                     start_new_session=True)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.send("Page.enable", session=True)
            self.send("Runtime.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session=True)
        except Exception:
            self.close()
            raise

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._cond:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        """One protocol command -> its result (CDPError on an error reply, a dead browser or the deadline)."""
        with self._cond:
            self._next_id += 1
            call = self._next_id
        message = {"id": call, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise CDPError(f"{method}: the browser is gone ({exc})") from None
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while call not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"{method}: {'the browser exited' if self._closed else 'no reply in time'}")
                self._cond.wait(left)
            reply = self._replies.pop(call)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"JavaScript: {details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy -> its value (CDPError at the deadline)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"still false after {timeout or self.timeout} s: {expression}")
            time.sleep(0.05)

    def navigate(self, url: str) -> None:
        """Open ``url`` and wait until its (new) document has loaded."""
        self.evaluate("window.__cdpOldDocument = true")
        reply = self.send("Page.navigate", {"url": url}, session=True)
        if reply.get("errorText"):
            raise CDPError(f"cannot open {url}: {reply['errorText']}")
        self.wait_for("!window.__cdpOldDocument && document.readyState === 'complete'")

    def click(self, selector: str) -> None:
        """A real left click (mouse press and release) at the centre of the element."""
        box = self.wait_for(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: "center"}}); const r = e.getBoundingClientRect();
            return r.width && r.height ? {{x: r.x + r.width / 2, y: r.y + r.height / 2}} : null; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                   "clickCount": 1}, session=True)

    def type(self, selector: str, text: str) -> None:
        """Click into the field, select what it holds and type ``text`` over it (input events, as a keyboard)."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self.send("Input.insertText", {"text": text}, session=True)

    def screenshot(self, path: str | os.PathLike[str]) -> Path:
        """A PNG of the page's viewport."""
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        out = Path(path)
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)  # the pipe's write end died with the browser: the reader sees its end
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
