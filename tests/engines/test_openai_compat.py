"""The openai backend against real servers on loopback: llama.cpp's server (with the real 0.5B model), and a
scripted one. The full fault matrix is in test_openai_faults.py."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import SampleCall
from engines.cache import CompletionCache
from engines.openai_compat import OpenAICompatBackend
from tests.engines.servers import chat_body, echo_server, scripted_server

PROMPT = (Message("system", "Answer with a number only."), Message("user", "What is 9 + 4?"))


def test_real_server_samples_through_engine_and_cache(llama_server: str, tmp_path: Path) -> None:
    backend = OpenAICompatBackend(llama_server, "small", max_concurrency=2, timeout_s=120)
    engine = Engine(backend, CompletionCache(tmp_path / "cache.sqlite"))
    requests = [ChatRequest(PROMPT, SamplingParams(max_tokens=16, n=2, seed=s)) for s in (1, 2)]
    groups = engine.generate(requests, progress=False)
    assert engine.stats.model_calls == 4 and engine.stats.failed_calls == 0
    for group in groups:
        assert [c.sample_index for c in group] == [0, 1]
        assert all(c.ok and c.completion_tokens > 0 and c.prompt_tokens > 0 for c in group)
    again = engine.generate(requests, progress=False)
    assert engine.stats.model_calls == 4 and engine.stats.cache_hits == 4
    assert [[c.text for c in g] for g in again] == [[c.text for c in g] for g in groups]
    # llama.cpp's server answers `n` with one choice: "auto" notices once and asks per sample from then on
    assert backend.server_n is False
    stats = backend.stats_dict()
    assert stats["openai_n_requests"] == 1 and stats["openai_n_fallbacks"] == 1 and stats["openai_requests"] == 4
    assert stats["openai_completion_tokens"] == engine.stats.completion_tokens
    engine.close()


# Each distinct request asks for its own number, and a reply delivered to the wrong index shows up as a mismatch.
# The thousand run against our echo server (a real HTTP server on loopback, in its own process, answering each
# request with its own number after a seeded random delay, so replies finish out of order); the real llama.cpp
# server gets three requests per client slot, which takes ~25 s instead of the ~4 min a thousand took.
THOUSAND = 1000
PEAK_MB_BOUND = 16.0  # measured 1.7 MB for 1,000 calls (tracemalloc; results included)


def number_calls(count: int) -> tuple[list[int], list[SampleCall]]:
    """`count` greedy calls, each asking for its own 3-digit number (Qwen writes one token per digit)."""
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=3, seed=0)
    system = Message("system", "Reply with the number only.")
    numbers = [100 + i % 900 for i in range(count)]
    return numbers, [SampleCall((system, Message("user", f"Reply with the number {n}")), sampling, 0) for n in numbers]


def collect(backend: OpenAICompatBackend, calls: list[SampleCall]) -> tuple[dict[int, str], float]:
    """Every call's digits by position, and the traced peak memory (MB) while they were in flight."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        seen: dict[int, str] = {}
        for pos, completion in backend.complete(calls):
            assert pos not in seen, f"call {pos} answered twice"
            assert completion.ok, completion.error
            seen[pos] = re.sub(r"\D", "", completion.text)
        return seen, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
        backend.close()


def test_a_thousand_concurrent_requests_keep_their_results_and_bounded_memory() -> None:
    numbers, calls = number_calls(THOUSAND)
    with echo_server(seed=0) as (url, served):
        backend = OpenAICompatBackend(url, "m", max_concurrency=32, timeout_s=60, max_retries=0)
        seen, peak_mb = collect(backend, calls)
        stats = backend.stats_dict()
        assert served.value == THOUSAND
    assert sorted(seen) == list(range(THOUSAND))
    assert all(seen[pos] == str(n) for pos, n in enumerate(numbers)), "a reply reached another request's position"
    assert stats["openai_peak_in_flight"] == 32 and stats["openai_failed_samples"] == 0
    assert peak_mb < PEAK_MB_BOUND, f"peak traced memory {peak_mb:.1f} MB"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_concurrent_requests_to_the_real_server_keep_their_results(llama_server: str) -> None:
    numbers, calls = number_calls(96)
    backend = OpenAICompatBackend(llama_server, "small", max_concurrency=32, timeout_s=600, max_retries=2)
    seen, _ = collect(backend, calls)
    assert sorted(seen) == list(range(len(calls)))
    # Greedy decoding makes the model right nearly always, so misdelivered results would be a mass mismatch.
    matches = sum(seen[pos] == str(n) for pos, n in enumerate(numbers))
    assert matches >= 0.95 * len(calls), f"only {matches} replies carry their own request's number"
    stats = backend.stats_dict()
    assert stats["openai_peak_in_flight"] == 32 and stats["openai_failed_samples"] == 0


def test_retries_5xx_and_429_then_succeeds() -> None:
    replies = [
        lambda body: (500, {}, b'{"error": "boom"}'),
        lambda body: (429, {"Retry-After": "0"}, b'{"error": "slow down"}'),
        lambda body: (200, {}, chat_body("\\boxed{13}")),
    ]
    with scripted_server(replies) as (url, received):
        backend = OpenAICompatBackend(url, "m", max_retries=4, timeout_s=5)
        [[completion]] = Engine(backend, None).generate([ChatRequest(PROMPT)], progress=False)
    assert completion.ok and completion.text == "\\boxed{13}" and completion.completion_tokens == 3
    assert (
        len(received) == 3
        and received[0]["model"] == "m"
        and received[0]["messages"][1]["content"] == PROMPT[1].content
    )


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (lambda body: (200, {}, b"{not json"), "invalid JSON"),
        (lambda body: (200, {}, b'{"choices": []}'), "malformed chat completion"),
        (lambda body: (400, {}, b'{"error": "bad request"}'), "HTTP 400"),
        (lambda body: (503, {}, b"unavailable"), "HTTP 503"),
    ],
)
def test_garbage_becomes_a_failed_completion_with_reason(reply, reason: str, tmp_path: Path) -> None:
    with scripted_server([reply]) as (url, _):
        backend = OpenAICompatBackend(url, "m", max_retries=2, timeout_s=5)
        engine = Engine(backend, CompletionCache(tmp_path / "c.sqlite"))
        [[completion]] = engine.generate([ChatRequest(PROMPT)], progress=False)
    assert not completion.ok and completion.finish_reason == "error"
    assert reason in (completion.error or "")
    assert engine.stats.failed_calls == 1
    assert engine.cache is not None
    assert len(engine.cache) == 0, "failures must not be cached, so the next run retries them"


def test_timeout_becomes_a_failed_completion() -> None:
    def slow(body: dict) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.5)
        return 200, {}, chat_body("late")

    with scripted_server([slow]) as (url, received):
        backend = OpenAICompatBackend(url, "m", max_retries=2, timeout_s=0.5)
        started = time.monotonic()
        [[completion]] = Engine(backend, None).generate([ChatRequest(PROMPT)], progress=False)
    assert not completion.ok and "Timeout" in (completion.error or "")
    assert len(received) == 2 and time.monotonic() - started < 10
