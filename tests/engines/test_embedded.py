"""The embedded backend on the real 0.5B CPU model, through the engine and its cache."""

from __future__ import annotations

from pathlib import Path

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.cache import CompletionCache
from engines.config import EngineConfig, build_backend

PROMPT = (Message("system", "Answer with a number only."), Message("user", "What is 7 + 5?"))


def test_samples_tokens_finish_reasons_and_cache(small_engine: Engine) -> None:
    request = ChatRequest(PROMPT, SamplingParams(temperature=0.8, max_tokens=24, n=3, seed=11))
    before = small_engine.stats.model_calls
    [group] = small_engine.generate([request], progress=False)
    assert [c.sample_index for c in group] == [0, 1, 2]
    for completion in group:
        assert completion.ok and completion.finish_reason in ("stop", "length")
        assert completion.prompt_tokens > 5 and 0 < completion.completion_tokens <= 24
    calls_first = small_engine.stats.model_calls - before
    # The session cache may already hold some of these samples; a second call must add no model calls.
    [again] = small_engine.generate([request], progress=False)
    assert small_engine.stats.model_calls - before == calls_first
    assert [c.text for c in again] == [c.text for c in group]
    assert all(c.cached for c in again)


def test_length_finish_reason_when_max_tokens_cuts(small_engine: Engine) -> None:
    request = ChatRequest(
        (Message("user", "Count from 1 to 100, separated by commas."),),
        SamplingParams(temperature=0.0, max_tokens=8, seed=1),
    )
    [[completion]] = small_engine.generate([request], progress=False)
    assert completion.finish_reason == "length" and completion.completion_tokens == 8


def test_same_seed_gives_the_same_sample_without_cache(session_root: Path) -> None:
    backend = build_backend(
        EngineConfig(model="qwen2.5-coder-0.5b-instruct-q4_k_m", n_ctx=512), session_root / "models"
    )
    request = ChatRequest(PROMPT, SamplingParams(temperature=1.0, max_tokens=16, n=2, seed=5))
    first = Engine(backend, cache=None).generate([request], progress=False)[0]
    second = Engine(backend, cache=None).generate([request], progress=False)[0]
    assert [c.text for c in first] == [c.text for c in second]
    backend.close()


def test_resumed_run_pays_only_for_missing_samples(tmp_path: Path, session_root: Path) -> None:
    backend = build_backend(
        EngineConfig(model="qwen2.5-coder-0.5b-instruct-q4_k_m", n_ctx=512), session_root / "models"
    )
    cache = CompletionCache(tmp_path / "cache.sqlite")
    engine = Engine(backend, cache)
    short = ChatRequest(PROMPT, SamplingParams(max_tokens=8, n=2, seed=9))
    engine.generate([short], progress=False)
    assert engine.stats.model_calls == 2
    # A "crashed" run got two samples done; asking for four now draws only the two missing ones.
    longer = ChatRequest(PROMPT, SamplingParams(max_tokens=8, n=4, seed=9))
    engine.generate([longer], progress=False)
    assert engine.stats.model_calls == 4 and engine.stats.cache_hits == 2
    engine.close()


def test_a_later_round_continues_the_sample_sequence(small_engine: Engine) -> None:
    whole = ChatRequest(PROMPT, SamplingParams(temperature=1.0, max_tokens=8, n=4, seed=21))
    [all_four] = small_engine.generate([whole], progress=False)
    before = small_engine.stats.model_calls
    later = ChatRequest(PROMPT, SamplingParams(temperature=1.0, max_tokens=8, n=2, seed=21), first_sample=2)
    [last_two] = small_engine.generate([later], progress=False)
    assert [c.sample_index for c in last_two] == [2, 3]
    assert [c.text for c in last_two] == [c.text for c in all_four[2:]], "round 2 = samples 2 and 3 of one run"
    assert small_engine.stats.model_calls == before, "and they are the same cache entries"
