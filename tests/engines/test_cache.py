"""The completion cache: content addressing, persistence across processes, concurrent writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from engines.base import Completion, Message, SampleCall, SamplingParams
from engines.cache import CompletionCache, cache_key

CALL = SampleCall((Message("user", "What is 2+2?"),), SamplingParams(temperature=0.7, seed=3), 0)


def test_key_changes_with_every_input_that_determines_a_sample() -> None:
    base = cache_key("embedded", "m", "rev1", CALL)
    variants = [
        cache_key("openai", "m", "rev1", CALL),
        cache_key("embedded", "m2", "rev1", CALL),
        cache_key("embedded", "m", "rev2", CALL),
        cache_key("embedded", "m", "rev1", SampleCall((Message("user", "What is 2+3?"),), CALL.sampling, 0)),
        cache_key("embedded", "m", "rev1", SampleCall(CALL.messages, SamplingParams(temperature=0.8, seed=3), 0)),
        cache_key("embedded", "m", "rev1", SampleCall(CALL.messages, SamplingParams(temperature=0.7, seed=4), 0)),
        cache_key("embedded", "m", "rev1", SampleCall(CALL.messages, CALL.sampling, 1)),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # `n` is not part of a sample's identity: asking for more samples reuses the first ones.
    more = SampleCall(CALL.messages, SamplingParams(temperature=0.7, seed=3, n=8), 0)
    assert cache_key("embedded", "m", "rev1", more) == base


def test_sample_seeds_do_not_collide_across_seed_and_index() -> None:
    a = SampleCall(CALL.messages, SamplingParams(seed=1), 0).sample_seed
    b = SampleCall(CALL.messages, SamplingParams(seed=0), 1).sample_seed
    assert a != b


def test_round_trip_persists_and_skips_failures(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CompletionCache(path)
    good = Completion("four", "stop", prompt_tokens=5, completion_tokens=1, latency_s=0.1)
    cache.put("k1", "embedded", "m", good)
    cache.put("k2", "embedded", "m", Completion("", "error", error="server said 500"))
    cache.close()
    reopened = CompletionCache(path)
    found = reopened.get_many(["k1", "k2", "k3"])
    assert set(found) == {"k1"}
    assert found["k1"].text == "four" and found["k1"].completion_tokens == 1
    assert len(reopened) == 1


def _writer(path: str, worker: int, count: int) -> None:
    cache = CompletionCache(Path(path))
    for i in range(count):
        # Both workers write the shared keys too: the first value must win, with no error.
        cache.put(f"shared-{i}", "embedded", "m", Completion(f"w{worker}", "stop"))
        cache.put(f"own-{worker}-{i}", "embedded", "m", Completion(f"w{worker}", "stop"))
    cache.close()


def test_concurrent_writers_in_separate_processes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    CompletionCache(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 200)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = CompletionCache(path)
    assert len(cache) == 200 + 2 * 200
    shared = cache.get_many([f"shared-{i}" for i in range(200)])
    assert len(shared) == 200 and {c.text for c in shared.values()} <= {"w0", "w1"}
