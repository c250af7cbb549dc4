"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended by
NUL on file descriptors 3 and 4, the transport Puppeteer uses), so a test can load a page, see every request it
makes and evaluate JavaScript in it, with no port, no websocket and no extra package. Debian's `chromium` only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # the dev machines and CI run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def chromium_or_fail() -> str:
    """The Chromium binary; its absence is a failure that says how to install it (CI installs it, so a missing
    browser must never turn the browser tests into silent skips)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise AssertionError("Chromium not found: install Debian's package with `apt-get install chromium`")
    return found


class Page:
    """One browser tab: `navigate`, `evaluate`, and the URLs of every request the tab made (`requests`)."""

    def __init__(self, process: subprocess.Popen[bytes], to_browser: Any, from_browser: Any) -> None:
        self._process, self._out, self._in = process, to_browser, from_browser
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self.requests: list[str] = []
        self.console_errors: list[str] = []

    def _send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        self._out.write(json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read(self, until: Any, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                self._record(message)
                if until(message):
                    return message
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from Chromium within {timeout_s} s")
            chunk = self._in.read(1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit code {self._process.poll()})")
            self._buffer += chunk

    def _record(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.console_errors.append(json.dumps(params.get("exceptionDetails", {}))[:500])

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout_s: float = 60) -> dict[str, Any]:
        """Send one command to the tab and return its result (raise on a protocol error)."""
        sent = self._send(method, params, session=self._session is not None)
        reply = self._read(lambda m: m.get("id") == sent, timeout_s)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def open_tab(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network.enable", "Page.enable", "Runtime.enable"):
            self.call(domain)

    def navigate(self, url: str, *, timeout_s: float = 60) -> None:
        """Load `url` and wait for its load event (every subresource fetched or failed)."""
        self.call("Page.navigate", {"url": url})
        self._read(lambda m: m.get("method") == "Page.loadEventFired", timeout_s)

    def evaluate(self, expression: str, *, timeout_s: float = 60) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise; JSON-serializable)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout_s=timeout_s,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextmanager
def chromium_page(width: int = 1280, height: int = 1000) -> Iterator[Page]:
    """A headless Chromium (fresh profile) with one tab open; closed and reaped on exit."""
    binary = chromium_or_fail()
    with tempfile.TemporaryDirectory(prefix="gradus-chromium-") as profile:
        browser_reads, we_write = os.pipe()
        we_read, browser_writes = os.pipe()

        def pipes_on_3_and_4() -> None:  # runs in the child before exec
            reads, writes = os.dup(browser_reads), os.dup(browser_writes)  # neither is 3 or 4 after this
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        process = subprocess.Popen(
            [*command, "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=pipes_on_3_and_4,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(browser_reads)
        os.close(browser_writes)
        with os.fdopen(we_write, "wb", buffering=0) as to_browser, os.fdopen(we_read, "rb", buffering=0) as reader:
            page = Page(process, to_browser, reader)
            try:
                page.open_tab()
                yield page
            finally:
                with suppress(Exception):
                    page.call("Browser.close", timeout_s=10)
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
