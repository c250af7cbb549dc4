"""The openai backend against a fault-injecting server on a real loopback socket (tests/engines/fault_server.py):
every failure mode ends in a successful retry or a failed completion naming the reason, each call is answered
exactly once, retries are bounded and counted, `Retry-After` is honoured, the circuit breaker opens and recovers,
and `n` is used where the server supports it without changing a single cache key."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import SampleCall
from engines.cache import CompletionCache
from engines.http_faults import CircuitBreaker, backoff_s, classify_status, parse_retry_after, split_tokens
from engines.openai_compat import OpenAICompatBackend, plan_jobs
from tests.conftest import free_port
from tests.engines.fault_server import fault_server, first_then

# Short waits, and a breaker that stays out of the way unless a test is about it.
FAST = {"backoff_base_s": 0.02, "backoff_max_s": 0.1, "timeout_s": 5.0, "breaker_failures": 1000}


def calls(count: int, *, n_each: int = 1, seed: int = 0) -> list[SampleCall]:
    sampling = SamplingParams(max_tokens=8, n=n_each, seed=seed)
    return [SampleCall((Message("user", f"q{i}"),), sampling, s) for i in range(count) for s in range(n_each)]


def run(backend: OpenAICompatBackend, batch: list[SampleCall]) -> dict:
    """All results by position, checking that each position comes back exactly once."""
    got = list(backend.complete(batch))
    positions = Counter(pos for pos, _ in got)
    assert sorted(positions) == list(range(len(batch))) and set(positions.values()) == {1}, "duplicates or gaps"
    return dict(got)


# ---- every failure mode, persistent: a failed completion with the reason, bounded attempts ----------------------

PERSISTENT = [
    ("500", "HTTP 500", 3),
    ("503", "HTTP 503", 3),
    ("429=0", "HTTP 429", 3),
    ("reset", "ReadError", 3),
    ("disconnect", "Server disconnected", 3),
    ("truncated", "invalid JSON", 3),
    ("html", "text/html, not JSON", 3),
    ("nonutf8", "not valid UTF-8", 3),
    ("delay=2", "no complete response within 0.4 s", 3),
    ("400", "HTTP 400", 1),  # the request's fault: retrying is futile
    ("no_choices", "malformed chat completion", 1),
    ("null", "malformed chat completion", 1),
    ("huge=5000000", "exceeds 4194304 bytes", 1),
]


@pytest.mark.parametrize(("mode", "reason", "attempts"), PERSISTENT, ids=[m for m, _, _ in PERSISTENT])
def test_a_persistent_fault_fails_each_call_with_its_reason(mode: str, reason: str, attempts: int) -> None:
    with fault_server(mode) as server:
        timeout = 0.4 if mode.startswith("delay") else 5.0
        backend = OpenAICompatBackend(server.url, "m", max_retries=3, **{**FAST, "timeout_s": timeout})
        results = run(backend, calls(4))
        backend.close()
    for completion in results.values():
        assert not completion.ok and completion.finish_reason == "error" and reason in (completion.error or "")
    assert Counter(hit.key for hit in server.hits) == Counter({hit.key: attempts for hit in server.hits})
    assert len(server.hits) == 4 * attempts
    stats = backend.stats_dict()
    assert stats["openai_retries"] == 4 * (attempts - 1) and stats["openai_requests"] == 4 * attempts
    assert stats["openai_failed_samples"] == 4 and stats["openai_samples"] == 4


TRANSIENT = ["500", "503", "429=0", "reset", "disconnect", "truncated", "html", "nonutf8", "delay=8"]


def test_transient_faults_end_in_a_successful_retry_with_each_result_in_its_place() -> None:
    rng = random.Random(7)
    script = {f"q{i}": [rng.choice(TRANSIENT) for _ in range(rng.randint(0, 2))] for i in range(60)}

    def plan(body: dict, attempt: int) -> str:
        faults = script[body["messages"][-1]["content"]]
        return faults[attempt] if attempt < len(faults) else "ok"

    with fault_server(plan) as server:
        backend = OpenAICompatBackend(
            server.url, "m", max_retries=3, max_concurrency=8, **{**FAST, "timeout_s": 3.0}
        )  # slack for a loaded CI box
        results = run(backend, calls(60))
        backend.close()
    for pos, completion in results.items():
        assert completion.ok, completion.error
        assert completion.text == f"reply to q{pos}", "a result landed on another call"
        assert completion.prompt_tokens == 7 and completion.completion_tokens == 3
    expected_retries = sum(len(faults) for faults in script.values())
    stats = backend.stats_dict()
    assert stats["openai_retries"] == expected_retries and len(server.hits) == 60 + expected_retries
    assert stats["openai_timeouts"] == sum(f.startswith("delay") for faults in script.values() for f in faults)
    assert stats["openai_failed_samples"] == 0 and stats["openai_latency_p95_s"] >= stats["openai_latency_p50_s"] > 0


def test_empty_and_one_megabyte_completions_arrive_whole() -> None:
    with fault_server(lambda body, attempt: "empty" if body["messages"][-1]["content"] == "q0" else "huge") as server:
        backend = OpenAICompatBackend(server.url, "m", **FAST)
        results = run(backend, calls(2))
        backend.close()
    # An empty answer is a real answer (the model stopped at once); the verifier rejects it downstream, with a reason.
    assert results[0].ok and results[0].text == ""
    assert results[1].ok and results[1].text == "x" * (1024 * 1024)


# ---- Retry-After ---------------------------------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured_and_capped() -> None:
    with fault_server(first_then(["429=0.4", "503"])) as server:
        backend = OpenAICompatBackend(server.url, "m", max_retries=3, **FAST)
        [(_, completion)] = backend.complete(calls(1))
    assert completion.ok
    first, second, third = server.hits
    assert second.at - first.at >= 0.4, "retried before the server's Retry-After"
    assert third.at - second.at < 0.4, "without Retry-After the (short) backoff applies"

    with fault_server(first_then(["429=3600"])) as server:
        backend = OpenAICompatBackend(server.url, "m", retry_after_cap_s=0.3, **FAST)
        started = time.monotonic()
        [(_, completion)] = backend.complete(calls(1))
    assert completion.ok and 0.3 <= time.monotonic() - started < 3, "an hour-long Retry-After is capped"


def test_retry_after_parses_both_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=5), usegmt=True)
    assert parse_retry_after(date, cap_s=60, now=now.timestamp()) == 5.0
    assert parse_retry_after("0.25", cap_s=60) == 0.25
    assert parse_retry_after("120", cap_s=60) == 60, "capped"
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=9), usegmt=True), cap_s=60, now=now.timestamp()) == 0
    )
    assert parse_retry_after("-3", cap_s=60) == 0
    for junk in (None, "", "soon", "nan", "inf", "Tue, 99 Foo 2026"):
        assert parse_retry_after(junk, cap_s=60) is None


def test_backoff_is_jittered_exponential_and_bounded() -> None:
    rng = random.Random(0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 20.0), (30, 20.0)]:
        waits = [backoff_s(attempt, rng, base_s=0.5, max_s=20.0) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits) and len(set(waits)) > 1
    assert [classify_status(s) for s in (200, 400, 404, 408, 429, 500, 503)] == [
        "ok", "fail", "fail", "retry", "retry", "retry", "retry"
    ]  # fmt: skip


# ---- circuit breaker -------------------------------------------------------------------------------------------------


def test_circuit_breaker_opens_fails_fast_and_recovers_after_a_probe() -> None:
    with fault_server("503") as server:
        backend = OpenAICompatBackend(
            server.url,
            "m",
            max_retries=1,
            max_concurrency=1,
            **{**FAST, "breaker_failures": 3, "breaker_cooldown_s": 0.5},
        )
        first = run(backend, calls(10))
        assert len(server.hits) == 3, "after 3 consecutive failures nothing more is sent"
        fast = [c for c in first.values() if "circuit breaker open" in (c.error or "")]
        assert len(fast) == 7 and all("HTTP 503" in (c.error or "") for c in fast), "fails fast, naming the cause"
        assert backend.breaker.state == "open"

        time.sleep(0.55)  # cool-down over: one probe goes out; it fails, so the breaker opens again
        again = run(backend, calls(4, seed=1))
        assert len(server.hits) == 4 and sum("circuit breaker open" in (c.error or "") for c in again.values()) == 3

        server.plan = lambda body, attempt: "ok"  # the server recovers
        time.sleep(0.55)
        healed = run(backend, calls(10, seed=2))
        assert all(c.ok for c in healed.values()) and backend.breaker.state == "closed"
        stats = backend.stats_dict()
        backend.close()
    assert stats["openai_circuit_opens"] == 2 and stats["openai_circuit_fast_fails"] == 10


def test_a_server_that_is_not_there_fails_fast_after_the_breaker_opens() -> None:
    backend = OpenAICompatBackend(
        f"http://127.0.0.1:{free_port()}", "m", max_retries=2, **{**FAST, "breaker_failures": 4}
    )
    results = run(backend, calls(50))
    backend.close()
    assert all("ConnectError" in (c.error or "") for c in results.values())
    stats = backend.stats_dict()
    assert stats["openai_circuit_opens"] == 1 and stats["openai_requests"] <= 4 + 32, "stopped sending"
    assert stats["openai_circuit_fast_fails"] >= 50 - 32


def test_breaker_ignores_rate_limiting_and_state_machine_steps() -> None:
    with fault_server("429=0") as server:
        backend = OpenAICompatBackend(server.url, "m", max_retries=4, **{**FAST, "breaker_failures": 2})
        [(_, completion)] = backend.complete(calls(1))
    assert not completion.ok and len(server.hits) == 4 and backend.breaker.state == "closed"

    now = [0.0]
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    breaker.record_failure("x")
    assert breaker.before_call() is None
    breaker.record_failure("HTTP 502")
    assert "HTTP 502" in (breaker.before_call() or "") and breaker.state == "open"
    now[0] = 10.0
    assert breaker.before_call() is None, "the probe"
    assert "probing" in (breaker.before_call() or ""), "only one probe at a time"
    breaker.record_success()
    assert breaker.state == "closed" and breaker.opens == 1


# ---- n samples per request ---------------------------------------------------------------------------------------


def test_server_n_is_used_where_honoured_and_keeps_the_cache_keys(tmp_path: Path) -> None:
    request = ChatRequest((Message("user", "q"),), SamplingParams(max_tokens=8, n=4, seed=3))
    cache = tmp_path / "c.sqlite"
    with fault_server("ok") as server:
        engine = Engine(OpenAICompatBackend(server.url, "m", **FAST), CompletionCache(cache))
        [group] = engine.generate([request], progress=False)
        engine.close()
    assert [hit.n for hit in server.hits] == [4], "one request for the four samples"
    assert [c.text for c in group] == ["reply to q", "reply to q #1", "reply to q #2", "reply to q #3"]
    assert [c.sample_index for c in group] == [0, 1, 2, 3] and engine.backend.server_n is True
    assert sum(c.completion_tokens for c in group) == 12 and all(c.prompt_tokens == 7 for c in group)

    with fault_server("500") as server:  # the same samples, one request each: every one is already cached
        engine = Engine(OpenAICompatBackend(server.url, "m", server_n=False, **FAST), CompletionCache(cache))
        [again] = engine.generate([request], progress=False)
        engine.close()
    assert engine.stats.model_calls == 0 and engine.stats.cache_hits == 4 and server.hits == []
    assert [c.text for c in again] == [c.text for c in group]


@pytest.mark.parametrize("kind", ["ignores", "rejects"])
def test_server_n_auto_falls_back_to_separate_requests(kind: str) -> None:
    with fault_server("ok", honour_n=kind != "ignores", reject_n=kind == "rejects") as server:
        backend = OpenAICompatBackend(server.url, "m", **FAST)
        first = run(backend, calls(1, n_each=3))
        assert backend.server_n is False
        later = run(backend, calls(2, n_each=3, seed=1))
        backend.close()
    assert all(c.ok and c.text == "reply to q0" for c in first.values())
    assert all(c.ok for c in later.values())
    ns = [hit.n for hit in server.hits]
    assert ns[0] == 3 and ns[1:] == [1] * (len(ns) - 1)
    assert len(ns) == (3 if kind == "ignores" else 4) + 6, "the probe's one choice is kept when n is ignored"
    keys = [hit.key for hit in server.hits if hit.n == 1]
    assert len(keys) == len(set(keys)), "each separately drawn sample has its own seed"


def test_token_split_over_choices_sums_to_the_servers_total() -> None:
    assert split_tokens(10, [5]) == [10]
    assert split_tokens(10, [1, 1, 1]) == [4, 3, 3] and sum(split_tokens(7, [3, 0, 9])) == 7
    assert split_tokens(5, [0, 0]) == [3, 2] and split_tokens(0, [4, 2]) == [0, 0]


def test_plan_jobs_groups_consecutive_samples_of_one_prompt() -> None:
    batch = calls(2, n_each=3) + [calls(1, n_each=6)[5]]
    # q0 sample 5 shares q0's prompt but does not follow sample 2, so it is a request of its own
    assert plan_jobs(batch, group=True, max_n=16) == [[0, 1, 2], [6], [3, 4, 5]]
    assert plan_jobs(batch, group=True, max_n=2) == [[0, 1], [2], [6], [3, 4], [5]]
    assert plan_jobs(batch, group=False, max_n=16) == [[i] for i in range(7)]


# ---- through the Engine, and the sync surface ---------------------------------------------------------------------


def test_failed_completions_are_not_cached_and_are_retried_next_run(tmp_path: Path) -> None:
    requests = [ChatRequest((Message("user", f"q{i}"),), SamplingParams(max_tokens=8, seed=0)) for i in range(6)]
    plan = lambda body, attempt: "503" if body["messages"][-1]["content"] in ("q1", "q4") else "ok"  # noqa: E731
    with fault_server(plan) as server:
        engine = Engine(OpenAICompatBackend(server.url, "m", max_retries=2, **FAST), CompletionCache(tmp_path / "c"))
        groups = engine.generate(requests, progress=False)
        assert [g[0].ok for g in groups] == [True, False, True, True, False, True]
        assert "HTTP 503" in (groups[1][0].error or "") and engine.stats.failed_calls == 2
        assert engine.cache is not None and len(engine.cache) == 4
        server.plan = lambda body, attempt: "ok"
        healed = engine.generate(requests, progress=False)
        engine.close()
    assert all(g[0].ok for g in healed) and engine.stats.model_calls == 8 and engine.stats.cache_hits == 4


def test_stopping_early_cancels_the_rest_and_the_backend_stays_usable() -> None:
    with fault_server("delay=0.3") as server:
        backend = OpenAICompatBackend(server.url, "m", max_concurrency=2, **FAST)
        started = time.monotonic()
        stream = backend.complete(calls(40))
        next(stream)
        stream.close()
        assert time.monotonic() - started < 3 and len(server.hits) < 10
        server.plan = lambda body, attempt: "ok"
        assert all(c.ok for c in run(backend, calls(3, seed=9)).values())
        backend.close()


def test_complete_works_inside_a_running_event_loop() -> None:
    with fault_server("ok") as server:
        backend = OpenAICompatBackend(server.url, "m", **FAST)

        async def caller() -> dict:  # what Dagster or an async test harness looks like to us
            return run(backend, calls(5))

        results = asyncio.run(caller())
        backend.close()
    assert [results[i].text for i in range(5)] == [f"reply to q{i}" for i in range(5)]
