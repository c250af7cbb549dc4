"""How an HTTP model backend survives a misbehaving server: which failures to retry, how long to wait before the
next attempt, when to stop sending altogether, and what it all cost.

- `classify_status`: 429, 408 and 5xx are worth retrying; other 4xx are the request's fault and fail at once.
- `parse_retry_after`: the `Retry-After` header in either form RFC 9110 §10.2.3 allows (delta-seconds or an
  HTTP-date), capped so a hostile or confused server cannot park a run for hours.
- `backoff_s`: exponential backoff with "equal jitter" (half the delay fixed, half random), so many clients that
  failed together do not retry together (Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog 2015).
- `CircuitBreaker`: after `threshold` consecutive server failures it opens and every call fails fast with the
  reason for `cooldown_s`; then one probe goes through (half-open) and its outcome closes or re-opens it
  (Nygard, "Release It!", 2nd ed., ch. 5). Rate limiting (429) does not count: a server that asks us to slow down
  is healthy, and `Retry-After` already paces us.
- `BackendStats`: requests, retries, breaker opens, tokens and a bounded latency sample for p50/p95.
- `decode_body` / `parse_choices`: a 2xx body that is not a JSON object (truncated, HTML, not UTF-8) is a
  retryable `BadBody`; a JSON object that is not a completion (no `choices`, null content) is a failed completion
  with the reason (`failed_completion`), since asking again would bring the same shape.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engines.base import Completion

RETRYABLE_4XX = frozenset({408, 429})


def classify_status(status: int) -> str:
    """`"ok"` (2xx/3xx), `"retry"` (408, 429, 5xx) or `"fail"` (other 4xx: retrying the same request is futile)."""
    if status < 400:
        return "ok"
    if status >= 500 or status in RETRYABLE_4XX:
        return "retry"
    return "fail"


def parse_retry_after(value: str | None, *, cap_s: float, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), clamped to `[0, cap_s]`; None when
    the header is absent or unreadable (the caller then falls back to its own backoff)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:  # RFC 9110 dates are GMT; a naive date is not one of them
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap_s)


def backoff_s(attempt: int, rng: random.Random, *, base_s: float, max_s: float) -> float:
    """The wait before retry number `attempt` (1-based): `d = min(max_s, base_s * 2**(attempt-1))`, then a uniform
    draw from `[d/2, d]`."""
    delay = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class CircuitBreaker:
    """Closed → (threshold consecutive failures) → open → (cool-down) → half-open: one probe → closed or open.

    Thread-safe; `clock` is injectable so tests can step time. `before_call` returns None when a call may go
    out, or the reason it must fail fast."""

    def __init__(self, threshold: int, cooldown_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = max(0.0, cooldown_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._last_error = ""
        self.opens = 0

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.cooldown_s else "open"

    def before_call(self) -> str | None:
        with self._lock:
            state = self._state()
            if state == "closed":
                return None
            if state == "half-open" and not self._probing:
                self._probing = True  # this caller is the probe; everyone else keeps failing fast until it reports
                return None
            wait = max(0.0, self.cooldown_s - (self._clock() - (self._opened_at or 0.0)))
            what = "probing the server" if state == "half-open" else f"next probe in {wait:.1f} s"
            return (
                f"circuit breaker open after {self._failures} consecutive server failures "
                f"(last: {self._last_error}); {what}"
            )

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = reason[:200]
            if self._probing or (self._opened_at is None and self._failures >= self.threshold):
                self._opened_at = self._clock()
                self.opens += 1
            self._probing = False

    def release_probe(self) -> None:
        """A probe that ended without a verdict on the server (cancelled): let the next caller probe instead."""
        with self._lock:
            self._probing = False


@dataclass
class BackendStats:
    """Cumulative accounting of one HTTP backend. `latency_sample` is a seeded reservoir (Vitter's algorithm R)
    of per-request seconds, so p50/p95 cost bounded memory however many requests a run makes."""

    requests: int = 0  # HTTP requests sent (attempts, including retries and probes)
    samples: int = 0  # completions yielded
    failed_samples: int = 0
    retries: int = 0
    timeouts: int = 0
    circuit_opens: int = 0
    circuit_fast_fails: int = 0
    n_requests: int = 0  # requests that asked the server for n > 1 choices
    n_fallbacks: int = 0  # samples re-requested one by one because the server ignored or rejected n
    in_flight: int = 0
    peak_in_flight: int = 0
    prompt_tokens: int = 0  # as the server reported them (once per request, also with n > 1)
    completion_tokens: int = 0
    reservoir_size: int = 4096
    latency_sample: list[float] = field(default_factory=list)
    _seen: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self, seconds: float) -> None:
        """A request ended after `seconds` (whatever its outcome)."""
        with self._lock:
            self.in_flight -= 1
            self.requests += 1
        self.observe_latency(seconds)

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            self._seen += 1
            if len(self.latency_sample) < self.reservoir_size:
                self.latency_sample.append(seconds)
            else:
                slot = self._rng.randrange(self._seen)
                if slot < self.reservoir_size:
                    self.latency_sample[slot] = seconds

    def as_dict(self, prefix: str = "") -> dict[str, float | int]:
        """Counters plus `latency_p50_s` / `latency_p95_s` (nearest-rank), keys prefixed with `prefix`."""
        with self._lock:
            ordered = sorted(self.latency_sample)
            values: dict[str, float | int] = {
                "requests": self.requests,
                "samples": self.samples,
                "failed_samples": self.failed_samples,
                "retries": self.retries,
                "timeouts": self.timeouts,
                "circuit_opens": self.circuit_opens,
                "circuit_fast_fails": self.circuit_fast_fails,
                "n_requests": self.n_requests,
                "n_fallbacks": self.n_fallbacks,
                "peak_in_flight": self.peak_in_flight,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "latency_p50_s": round(_rank(ordered, 0.50), 4),
                "latency_p95_s": round(_rank(ordered, 0.95), 4),
            }
        return {f"{prefix}{key}": value for key, value in values.items()}


def _rank(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# ---- reading a response -------------------------------------------------------------------------------------------


class BadBody(Exception):
    """A 2xx response whose body is not a JSON object (retryable: a proxy or a cut connection may have mangled it)."""


def failed_completion(reason: str, started: float) -> Completion:
    """A failed sample: `finish_reason="error"`, the reason (cut to 500 characters) and the time spent."""
    return Completion(text="", finish_reason="error", error=reason[:500], latency_s=time.perf_counter() - started)


def nonneg_int(value: object) -> int:
    """A token count from untrusted JSON: a non-negative int, 0 when absent or unreadable."""
    try:
        return max(0, int(value or 0))  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0


def decode_body(content: bytes, content_type: str) -> dict[str, object]:
    """The response body as a JSON object, or `BadBody` naming what is wrong (retryable: a proxy or a truncated
    write may have mangled it)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"response is not valid UTF-8 ({exc.reason} at byte {exc.start}): {content[:120]!r}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        if "json" not in content_type.lower():
            raise BadBody(f"server sent {content_type or 'no content type'}, not JSON: {text[:120]!r}") from None
        raise BadBody(f"server sent invalid JSON ({exc}): {text[:120]!r}") from None
    if not isinstance(body, dict):
        raise BadBody(f"server sent JSON that is not an object: {text[:200]!r}")
    return body


def parse_choices(body: dict[str, object], *, open_turn: bool, started: float) -> list[Completion] | Completion:
    """The completions of a chat (`choices[i].message.content`) or text (`choices[i].text`) response, in choice
    order; a single failed completion with the reason when the body is not one."""
    kind = "text completion" if open_turn else "chat completion"
    try:
        raw = body["choices"]
        if not isinstance(raw, list) or not raw:
            raise ValueError("no choices")
        ordered = sorted(raw, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0)
        texts, finishes = [], []
        for choice in ordered:
            text = choice["text"] if open_turn else choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"the completion text is {type(text).__name__}, not a string")
            texts.append(text)
            finishes.append("length" if choice.get("finish_reason") == "length" else "stop")
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        return failed_completion(f"malformed {kind} ({exc!r}): {json.dumps(body)[:200]}", started)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    prompt_tokens = nonneg_int(usage.get("prompt_tokens"))  # type: ignore[union-attr]
    shares = split_tokens(nonneg_int(usage.get("completion_tokens")), [len(t) for t in texts])  # type: ignore[union-attr]
    latency = time.perf_counter() - started
    return [
        Completion(
            text=text,
            finish_reason=finish,  # type: ignore[arg-type]
            prompt_tokens=prompt_tokens,
            completion_tokens=share,
            latency_s=latency,
        )
        for text, finish, share in zip(texts, finishes, shares, strict=True)
    ]


def split_tokens(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (equally when they are all 0), largest remainder first, so the
    shares sum to `total` exactly."""
    if sum(weights) == 0:
        weights = [1] * len(weights)
    mass = sum(weights)
    exact = [total * w / mass for w in weights]
    shares = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: shares[i] - exact[i])[: total - sum(shares)]:
        shares[i] += 1
    return shares
