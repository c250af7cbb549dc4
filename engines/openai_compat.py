"""Any OpenAI-compatible chat server (vLLM serve, SGLang, llama.cpp server) as a backend.

An asyncio client (`httpx.AsyncClient`) on an event loop of its own, in a dedicated thread, so `complete` stays a
plain iterator that works whether or not the caller's thread already runs a loop (Dagster, pytest). At most
`max_concurrency` requests are in flight (an `asyncio.Semaphore` shared by every `complete` call on the backend);
that many workers pull calls from the list, so memory holds the results, never a coroutine per call.

Each request has a total deadline (`timeout_s`, connect to last byte; time queued on our side does not count, but
time queued at the server does — on a single-slot server such as llama.cpp without `--parallel`, keep
`max_concurrency` near its slot count or raise `timeout_s`). Failures are handled as `engines.http_faults`
describes: 408/429/5xx, connection errors, timeouts and unreadable bodies are retried with jittered exponential
backoff or after the server's `Retry-After`, up to `max_retries` attempts in all; a circuit breaker stops sending
after `breaker_failures` consecutive server failures and fails fast, with the reason, until a probe succeeds. A call
that still fails, or a response that is not a well-formed completion, becomes a completion with
`finish_reason="error"` and the reason — a failed row downstream (and never cached), not a crash.

`server_n` ("auto", True, False): the samples of one request (the same messages and sampling, consecutive sample
indexes) go out as one request with `n`, seeded with the first sample's seed; choice i becomes sample `first + i`,
so every sample keeps its own cache key. "auto" asks once: a server that rejects `n` (HTTP 400/422) or ignores it
(fewer choices back) gets separate requests from then on. Per choice, `prompt_tokens` is the request's prompt (as
if sent alone) and `completion_tokens` the server's total split in proportion to the choices' text lengths; the
backend's own `stats` count what the server reported, once per request.

Open-turn (raw-prefix) calls go to `/v1/completions`: the server never sees the messages, so the prompt is built
here from a chat template — `chat_template` (Jinja, the Hugging Face convention: `messages`,
`add_generation_prompt`, `bos_token`, `eos_token`) or, by default, ChatML (`<|im_start|>role\ncontent<|im_end|>`,
right for Qwen models; pass the served model's own template for any other family). `bos_token` and `eos_token`
render empty, since the server adds BOS itself when it tokenizes a completions prompt. The template's end-of-turn
marker is sent as a stop string.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

import httpx
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engines.base import CHATML_TEMPLATE, Completion, ModelIdentity, SampleCall, canonical_json, open_turn_prompt
from engines.errors import ConfigError
from engines.http_faults import (
    BackendStats,
    BadBody,
    CircuitBreaker,
    backoff_s,
    classify_status,
    decode_body,
    failed_completion,
    nonneg_int,
    parse_choices,
    parse_retry_after,
)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_N_PER_REQUEST = 16  # samples asked of the server in one request (larger groups are split)
ServerN = bool | Literal["auto"]


class _CallFailed(Exception):
    """A request that ended without a usable response; `status` is the last HTTP status (None: no response)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _TooLarge(Exception):
    """A response past `max_response_bytes` (not retried: the same request would bring the same flood)."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    path: str
    payload: dict[str, object]


class OpenAICompatBackend(ModelIdentity):
    """The openai backend (see the module docstring). `stats_dict()` reports requests, retries, timeouts, breaker
    opens, tokens and latency p50/p95, prefixed `openai_`, for merging into `Engine.stats.as_dict()`."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        model_revision: str | None = None,
        max_concurrency: int = 32,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        chat_template: str | None = None,
        server_n: ServerN = "auto",
        retry_after_cap_s: float = 60.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        breaker_failures: int = 8,
        breaker_cooldown_s: float = 30.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        jitter_seed: int = 0,
    ) -> None:
        super().__init__(model, model_revision or model)
        if server_n not in (True, False, "auto"):
            raise ConfigError(f"server_n must be true, false or 'auto', got {server_n!r}")
        self._template = compile_chat_template(chat_template or CHATML_TEMPLATE)
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._max_concurrency = max(1, max_concurrency)
        self._timeout_s = timeout_s
        self._max_attempts = max(1, max_retries)  # the field has always counted attempts, the first included
        self._server_n: ServerN = server_n
        self._retry_after_cap_s = retry_after_cap_s
        self._backoff = (backoff_base_s, backoff_max_s)
        self._max_response_bytes = max_response_bytes
        self._rng = random.Random(jitter_seed)  # jitter only: it shapes timing, never a sample
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s)
        self.stats = BackendStats()
        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        # created on the backend's loop, the only place they are used
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._n_probe: asyncio.Lock | None = None

    # ---- the sync surface --------------------------------------------------------------------------------------

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        """Yield `(position, completion)` once per call, in completion order. Stopping early cancels the rest."""
        if not calls:
            return
        out: queue.SimpleQueue[tuple[int, Completion] | BaseException | None] = queue.SimpleQueue()
        jobs = plan_jobs(calls, group=self._server_n is not False, max_n=MAX_N_PER_REQUEST)
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._run(calls, jobs, out), self._event_loop())
        seen: set[int] = set()
        try:
            while True:
                try:
                    item = out.get(timeout=0.5)
                except queue.Empty:
                    if future.done() and out.empty():  # the loop went away without its end marker (closed)
                        break
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item[0] in seen:  # a bug if it happens; the contract is one completion per call
                    continue
                seen.add(item[0])
                yield item
            for pos in range(len(calls)):
                if pos not in seen:
                    yield (
                        pos,
                        failed_completion("the backend produced no completion for this call", time.perf_counter()),
                    )
        finally:
            future.cancel()

    def stats_dict(self) -> dict[str, float | int]:
        """Cumulative accounting of this backend, keys prefixed `openai_` (see `BackendStats.as_dict`)."""
        self.stats.circuit_opens = self.breaker.opens
        return self.stats.as_dict(prefix="openai_")

    @property
    def server_n(self) -> ServerN:
        """True/False once known (or as configured); "auto" until the first multi-sample request has answered."""
        return self._server_n

    def render_template(self, messages: list[dict[str, str]]) -> str:
        """The configured chat template (default ChatML) rendered without a generation prompt."""
        return self._template.render(messages=messages, add_generation_prompt=False, bos_token="", eos_token="")

    def close(self) -> None:
        with self._start_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result(timeout=10)
            self._client = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The backend's loop, started on first use (and again in a forked child, where the thread is gone)."""
        with self._start_lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="gradus-openai-client", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._client = self._semaphore = self._n_probe = None
            return self._loop

    # ---- on the loop -------------------------------------------------------------------------------------------

    async def _run(self, calls: Sequence[SampleCall], jobs: list[list[int]], out: queue.SimpleQueue) -> None:
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(
                    base_url=self._base_url,
                    headers=self._headers,
                    timeout=httpx.Timeout(self._timeout_s, connect=min(10.0, self._timeout_s)),
                    limits=httpx.Limits(
                        max_connections=self._max_concurrency, max_keepalive_connections=self._max_concurrency
                    ),
                )
                self._semaphore = asyncio.Semaphore(self._max_concurrency)
                self._n_probe = asyncio.Lock()
            pending = iter(jobs)
            workers = min(self._max_concurrency, len(jobs))
            await asyncio.gather(*(self._worker(calls, pending, out) for _ in range(workers)))
        except Exception as exc:  # a bug in this module: surface it in the caller's thread
            out.put(exc)
        finally:
            out.put(None)

    async def _worker(self, calls: Sequence[SampleCall], jobs: Iterator[list[int]], out: queue.SimpleQueue) -> None:
        for job in jobs:  # one shared iterator: each job is taken by exactly one worker
            started = time.perf_counter()
            try:
                results = await self._job(calls, job, started)
            except Exception as exc:  # never lose a row to an unexpected response shape: fail it with the reason
                results = [(pos, failed_completion(f"{type(exc).__name__}: {exc}", started)) for pos in job]
            for pos, completion in results:
                self.stats.add(samples=1, failed_samples=0 if completion.ok else 1)
                out.put((pos, completion))

    async def _job(self, calls: Sequence[SampleCall], job: list[int], started: float) -> list[tuple[int, Completion]]:
        call = calls[job[0]]
        try:
            prepared = self._prepare(call)
        except (ValueError, jinja2.TemplateError) as exc:
            return [(pos, failed_completion(f"chat template: {exc}", started)) for pos in job]
        if len(job) > 1 and self._server_n is not False:
            return await self._job_with_n(calls, job, prepared, started)
        singles = await asyncio.gather(*(self._single(calls[pos], prepared, started) for pos in job))
        return list(zip(job, singles, strict=True))

    async def _single(self, call: SampleCall, prepared: _Prepared, started: float) -> Completion:
        payload = {**prepared.payload, "seed": call.sample_seed, "n": 1}
        try:
            body = await self._post(prepared.path, payload)
        except _CallFailed as exc:
            return failed_completion(exc.reason, started)
        choices = parse_choices(body, open_turn=call.is_open_turn, started=started)
        return choices[0] if isinstance(choices, list) else choices

    async def _job_with_n(
        self, calls: Sequence[SampleCall], job: list[int], prepared: _Prepared, started: float
    ) -> list[tuple[int, Completion]]:
        assert self._n_probe is not None
        if self._server_n == "auto":
            async with self._n_probe:  # the first multi-sample job asks; the rest wait for its answer
                if self._server_n == "auto":
                    return await self._n_request(calls, job, prepared, started)
        if self._server_n is False:
            return await self._job(calls, job, started)
        return await self._n_request(calls, job, prepared, started)

    async def _n_request(
        self, calls: Sequence[SampleCall], job: list[int], prepared: _Prepared, started: float
    ) -> list[tuple[int, Completion]]:
        first = calls[job[0]]
        payload = {**prepared.payload, "seed": first.sample_seed, "n": len(job)}
        self.stats.add(n_requests=1)
        try:
            body = await self._post(prepared.path, payload)
        except _CallFailed as exc:
            if self._server_n == "auto" and exc.status in (400, 422):  # the server rejects n: ask one at a time
                self._server_n = False
                self.stats.add(n_fallbacks=len(job))
                return await self._job(calls, job, started)
            return [(pos, failed_completion(exc.reason, started)) for pos in job]
        choices = parse_choices(body, open_turn=first.is_open_turn, started=started)
        if not isinstance(choices, list):
            return [(pos, choices) for pos in job]
        if self._server_n == "auto":
            self._server_n = len(choices) >= len(job)
        got = list(zip(job, choices[: len(job)], strict=False))
        rest = job[len(got) :]
        if rest:  # the server ignored n: draw the missing samples one by one, each with its own seed
            self.stats.add(n_fallbacks=len(rest))
            singles = await asyncio.gather(*(self._single(calls[pos], prepared, started) for pos in rest))
            got += list(zip(rest, singles, strict=True))
        return got

    def _prepare(self, call: SampleCall) -> _Prepared:
        payload: dict[str, object] = {
            "model": self.model_id,
            "temperature": call.sampling.temperature,
            "top_p": call.sampling.top_p,
            "max_tokens": call.sampling.max_tokens,
        }
        stop = list(call.sampling.stop)
        if call.is_open_turn:
            prompt = open_turn_prompt(call.messages, self.render_template)
            path, payload["prompt"], stop = "/v1/completions", prompt.text, prompt.stop(stop)
        else:
            path, payload["messages"] = "/v1/chat/completions", call.messages_json()
        if stop:
            payload["stop"] = stop
        return _Prepared(path, payload)

    async def _post(self, path: str, payload: dict[str, object]) -> dict[str, object]:
        """POST with retries, backoff, `Retry-After` and the circuit breaker; the parsed JSON object, or
        `_CallFailed` with the reason."""
        assert self._semaphore is not None
        for attempt in range(1, self._max_attempts + 1):
            refused = self.breaker.before_call()
            if refused:
                self.stats.add(circuit_fast_fails=1)
                raise _CallFailed(refused)
            status: int | None = None
            retry_after: float | None = None
            try:
                async with self._semaphore:
                    sent = time.perf_counter()
                    self.stats.enter()
                    try:
                        async with asyncio.timeout(self._timeout_s):
                            status, headers, content = await self._send(path, payload)
                    finally:
                        self.stats.leave(time.perf_counter() - sent)
                verdict = classify_status(status)
                if verdict == "ok":
                    body = decode_body(content, headers.get("content-type", ""))
                    self.breaker.record_success()
                    self._account(body)
                    return body
                reason = f"HTTP {status} from server: {content[:300].decode('utf-8', 'replace')}"
                if verdict == "fail":  # the server is up and says the request is wrong: retrying is futile
                    self.breaker.record_success()
                    raise _CallFailed(reason, status)
                retry_after = parse_retry_after(headers.get("retry-after"), cap_s=self._retry_after_cap_s)
            except (TimeoutError, httpx.TimeoutException) as exc:
                reason = f"{type(exc).__name__}: no complete response within {self._timeout_s:g} s"
                self.stats.add(timeouts=1)
            except httpx.HTTPError as exc:  # connection refused/reset, peer closed mid-body, bad encoding
                reason = f"{type(exc).__name__}: {str(exc) or 'the connection failed or was reset mid-response'}"
            except _TooLarge as exc:  # the same request would bring the same flood: fail it now
                self.breaker.record_success()
                raise _CallFailed(str(exc), status) from None
            except BadBody as exc:
                reason = str(exc)
            except BaseException:  # cancelled, or a request-level failure raised above: never leave a probe hanging
                self.breaker.release_probe()
                raise
            if status == 429:
                self.breaker.release_probe()  # rate limiting is not a sick server (see engines.http_faults)
            else:
                self.breaker.record_failure(reason)
            if attempt == self._max_attempts:
                break
            self.stats.add(retries=1)
            if retry_after is None:
                retry_after = backoff_s(attempt, self._rng, base_s=self._backoff[0], max_s=self._backoff[1])
            await asyncio.sleep(retry_after)
        raise _CallFailed(f"{reason} (gave up after {self._max_attempts} attempts)", status)

    async def _send(self, path: str, payload: dict[str, object]) -> tuple[int, httpx.Headers, bytes]:
        assert self._client is not None
        async with self._client.stream("POST", path, json=payload) as response:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > self._max_response_bytes:
                    raise _TooLarge(f"response exceeds {self._max_response_bytes} bytes; refused")
            return response.status_code, response.headers, bytes(content)

    def _account(self, body: dict[str, object]) -> None:
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        self.stats.add(
            prompt_tokens=nonneg_int(usage.get("prompt_tokens")),  # type: ignore[union-attr]
            completion_tokens=nonneg_int(usage.get("completion_tokens")),  # type: ignore[union-attr]
        )


def plan_jobs(calls: Sequence[SampleCall], *, group: bool, max_n: int) -> list[list[int]]:
    """Positions of `calls` grouped into requests: alone, or (`group`) runs of consecutive sample indexes of the
    same messages and sampling, at most `max_n` long, in first-seen order."""
    if not group:
        return [[pos] for pos in range(len(calls))]
    by_prompt: dict[str, list[int]] = {}
    for pos, call in enumerate(calls):
        key = canonical_json([call.messages_json(), call.sampling.per_sample(), call.sampling.seed])
        by_prompt.setdefault(key, []).append(pos)
    jobs: list[list[int]] = []
    for positions in by_prompt.values():
        positions.sort(key=lambda pos: calls[pos].sample_index)
        run: list[int] = []
        for pos in positions:
            follows = run and calls[pos].sample_index == calls[run[-1]].sample_index + 1
            if run and (not follows or len(run) == max_n):
                jobs.append(run)
                run = []
            run.append(pos)
        jobs.append(run)
    return jobs


def compile_chat_template(template: str) -> jinja2.Template:
    """A chat template compiled in Jinja's sandbox (templates are configuration, but never trusted with Python)."""

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"chat_template is not a valid Jinja template: {exc}") from None
