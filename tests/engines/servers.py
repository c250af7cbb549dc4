"""Real HTTP servers on loopback for the openai backend's tests: llama.cpp's OpenAI-compatible server on the
embedded model, and a small scripted server of our own (successive replies from a list). The fault-injecting
server with every failure mode is `tests/engines/fault_server.py`."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port


@contextmanager
def llama_cpp_server(model_path: Path, alias: str, log: Path) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on loopback; yield its base URL once it answers."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "1024",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            else:
                raise RuntimeError("llama_cpp.server did not start within 120 s")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


Reply = Callable[[dict], tuple[int, dict[str, str], bytes]]


class _WideBacklogServer(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 resets connections when dozens of clients connect at once
    request_queue_size = 128
    daemon_threads = True


def chat_body(text: str, finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3},
        }
    ).encode()


@contextmanager
def scripted_server(replies: list[Reply]) -> Iterator[tuple[str, list[dict]]]:
    """A loopback server answering successive POSTs with the scripted replies (the last one repeats)."""
    received: list[dict] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received.append(body)
                reply = replies[min(len(received), len(replies)) - 1]
            status, headers, payload = reply(body)
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = _WideBacklogServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _serve_echo(port: int, seed: int, served: Any, ready: Any) -> None:
    """Child-process body of `echo_server`: answer each chat request with the last word of its last message."""
    delays = random.Random(seed)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections, as with a real server

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                delay = delays.uniform(0.0, 0.02)
            time.sleep(delay)  # replies finish out of order
            payload = chat_body(body["messages"][-1]["content"].rsplit(" ", 1)[-1])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            with served.get_lock():
                served.value += 1

        def log_message(self, *args: object) -> None:
            pass

    server = _WideBacklogServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


@contextmanager
def echo_server(seed: int) -> Iterator[tuple[str, Any]]:
    """A loopback server in its own process that answers every chat request with the last word of its last
    message after a seeded random 0-20 ms delay: its URL and a shared counter of requests served. In a process of
    its own, it neither competes with the client for the GIL nor shows up in the client's traced memory."""
    context = multiprocessing.get_context("spawn")
    served, ready = context.Value("i", 0), context.Event()
    port = free_port()
    process = context.Process(target=_serve_echo, args=(port, seed, served, ready), daemon=True)
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the echo server did not start within 60 s")
        yield f"http://127.0.0.1:{port}", served
    finally:
        process.terminate()
        process.join(10)
