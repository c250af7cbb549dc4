"""A fault-injecting OpenAI-compatible server on a real loopback socket (stdlib `ThreadingHTTPServer`).

Each request is answered according to a *plan*: a function of the request body and how many times the same prompt
(messages or prompt text, and seed) has been seen before, returning a mode:

    ok              a completion "reply to <last message>" (+ " #i" for choice i > 0); usage 7 in, 3 per choice
    delay=<s>       sleep s seconds, then ok
    500, 503        that status with a JSON error body
    429=<v>         429 with `Retry-After: <v>` (seconds or an HTTP-date); `429` alone sends no header
    400             a 400 ("bad request") — the request's fault, not retryable
    reset           headers and half the body, then a TCP reset (SO_LINGER 0) mid-response
    disconnect      close the connection before sending anything
    truncated       200, application/json, a JSON document cut in half (Content-Length matches the cut)
    html            200 with text/html (a proxy's error page)
    empty           a completion whose content is ""
    null            a completion whose content is null
    huge=<bytes>    a completion of that many characters (default 1 MB)
    nonutf8         200 whose body holds bytes that are not UTF-8
    no_choices      a JSON object without `choices`

`n` > 1 is honoured (that many choices), ignored (`honour_n=False`: one choice) or rejected with 400
(`reject_n=True`). Every request is logged with its key, attempt, mode, arrival time and `n`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Plan = Callable[[dict, int], str]


@dataclass(frozen=True)
class Hit:
    key: str
    attempt: int
    mode: str
    at: float  # time.monotonic() on arrival
    n: int
    body: dict


@dataclass
class FaultServer:
    url: str
    plan: Plan
    honour_n: bool = True
    reject_n: bool = False
    hits: list[Hit] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict[str, int] = field(default_factory=dict)

    def attempts(self, key_part: str) -> list[Hit]:
        """The logged requests whose prompt key contains `key_part`, in arrival order."""
        with self._lock:
            return [hit for hit in self.hits if key_part in hit.key]

    def _register(self, body: dict) -> Hit:
        key = prompt_key(body)
        with self._lock:
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
        mode = self.plan(body, attempt)
        n = body.get("n") if isinstance(body.get("n"), int) else 1
        hit = Hit(key, attempt, mode, time.monotonic(), n, body)
        with self._lock:
            self.hits.append(hit)
        return hit


def prompt_key(body: dict) -> str:
    """What identifies one sample's request: its prompt (messages or raw prompt) and its seed."""
    prompt = body.get("messages") or body.get("prompt")
    return json.dumps([prompt, body.get("seed")], sort_keys=True)


def last_content(body: dict) -> str:
    if isinstance(body.get("messages"), list) and body["messages"]:
        return str(body["messages"][-1].get("content", ""))
    return str(body.get("prompt", ""))


def completion_body(body: dict, texts: list[str | None]) -> bytes:
    chat = "messages" in body
    choices = [
        {
            "index": i,
            **({"message": {"role": "assistant", "content": t}} if chat else {"text": t}),
            "finish_reason": "stop",
        }
        for i, t in enumerate(texts)
    ]
    usage = {"prompt_tokens": 7, "completion_tokens": 3 * len(texts), "total_tokens": 7 + 3 * len(texts)}
    return json.dumps({"object": "chat.completion", "choices": choices, "usage": usage}).encode()


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # 32+ clients connect at once; the default backlog of 5 would drop SYNs
    daemon_threads = True
    faults: FaultServer

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is part of the script
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        faults = self.server.faults
        hit = faults._register(body)
        mode, _, arg = hit.mode.partition("=")
        if mode == "delay":
            time.sleep(float(arg))
            mode = "ok"
        n = max(1, hit.n)
        if n > 1 and faults.reject_n:
            return self._send(400, b'{"error": {"message": "n > 1 is not supported"}}')
        count = n if faults.honour_n else 1
        reply = f"reply to {last_content(body)}"
        texts: list[str | None] = [reply + (f" #{i}" if i else "") for i in range(count)]
        if mode == "ok":
            return self._send(200, completion_body(body, texts))
        if mode in ("500", "503", "400"):
            return self._send(int(mode), json.dumps({"error": {"message": f"injected {mode}"}}).encode())
        if mode == "429":
            return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": arg} if arg else {})
        if mode == "reset":
            return self._reset(completion_body(body, texts))
        if mode == "disconnect":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if mode == "truncated":
            full = completion_body(body, texts)
            return self._send(200, full[: len(full) // 2])
        if mode == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
            return self._send(200, page, {"Content-Type": "text/html"})
        if mode == "empty":
            return self._send(200, completion_body(body, [""] * count))
        if mode == "null":
            return self._send(200, completion_body(body, [None] * count))
        if mode == "huge":
            size = int(arg or 1024 * 1024)
            return self._send(200, completion_body(body, ["x" * size] * count))
        if mode == "nonutf8":
            good = completion_body(body, ["PLACEHOLDER"] * count)
            return self._send(200, good.replace(b"PLACEHOLDER", b"caf\xe9 \xff\xfe"))
        if mode == "no_choices":
            return self._send(200, b'{"object": "chat.completion", "usage": {"prompt_tokens": 7}}')
        raise ValueError(f"fault_server: unknown mode {hit.mode!r}")

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.wfile.write(payload)

    def _reset(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            # linger 0: close() sends RST instead of FIN, which is what a crashed server or proxy looks like
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def fault_server(plan: Plan | str = "ok", *, honour_n: bool = True, reject_n: bool = False) -> Iterator[FaultServer]:
    """Serve on 127.0.0.1 (a free port) until the block ends. `plan` is a mode for every request, or a function
    `(body, attempt) -> mode`; it can be swapped on the yielded `FaultServer` while it runs."""
    server = _Server(("127.0.0.1", 0), _Handler)
    chosen = plan if callable(plan) else (lambda body, attempt, mode=plan: mode)
    faults = FaultServer(f"http://127.0.0.1:{server.server_address[1]}", chosen, honour_n, reject_n)
    server.faults = faults
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield faults
    finally:
        server.shutdown()
        server.server_close()


def first_then(faults: list[str], then: str = "ok") -> Plan:
    """A plan: attempt i of each prompt gets `faults[i]`, later attempts `then`."""
    return lambda body, attempt: faults[attempt] if attempt < len(faults) else then
