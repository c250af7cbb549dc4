"""Batched decoding in the embedded backend (issue 22) on the real 0.5B CPU model: the same calls give the same
texts run after run and whatever else shares their batches (other requests, another `parallel`, another order),
a killed-and-resumed run gives the texts of one that never stopped, and a cache written by the one-at-a-time
backend is still hit."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import SampleCall
from engines.cache import CompletionCache, cache_key
from engines.config import EngineConfig, build_backend
from engines.embedded import EmbeddedBackend
from engines.models import EMBEDDED_MODELS, ensure_model
from tests.conftest import REPO, SMALL_MODEL, cached_completions

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_batching_cache.jsonl"
QUESTIONS = ("What is 17 * 23?", "Solve 3x + 5 = 20 for x.", "What is 2 to the power 10?", "What is 144 / 12 + 7?")


def _requests(n: int = 4, *, max_tokens: int = 32) -> list[ChatRequest]:
    sampling = SamplingParams(temperature=1.0, max_tokens=max_tokens, n=n, seed=4)
    return [ChatRequest((Message("system", "Think briefly."), Message("user", q)), sampling) for q in QUESTIONS]


def _backend(session_root: Path, parallel: int) -> EmbeddedBackend:
    backend = build_backend(EngineConfig(model=SMALL_MODEL, n_ctx=512, parallel=parallel), session_root / "models")
    assert isinstance(backend, EmbeddedBackend)
    return backend


def _texts(engine: Engine, requests: list[ChatRequest]) -> list[list[str]]:
    return [[c.text for c in group] for group in engine.generate(requests, progress=False)]


def test_the_same_calls_give_the_same_texts_in_a_fresh_backend(session_root: Path) -> None:
    requests = _requests()
    first = _backend(session_root, parallel=4)
    texts = _texts(Engine(first, cache=None), requests)
    again = _texts(Engine(first, cache=None), requests)
    first.close()
    fresh = _backend(session_root, parallel=4)
    other = _texts(Engine(fresh, cache=None), requests)
    fresh.close()
    assert texts == again == other
    flat = [t for group in texts for t in group]
    assert all(flat) and len(set(flat)) > len(QUESTIONS), "temperature 1.0: a request's samples differ"


@pytest.mark.parametrize(("alone_parallel", "packed_parallel", "reversed_parallel"), [(2, 7, 5), (8, 16, 12)])
def test_a_samples_text_does_not_depend_on_what_shares_its_batches(
    session_root: Path, alone_parallel: int, packed_parallel: int, reversed_parallel: int
) -> None:
    """Batch invariance, bit for bit, on each side of llama.cpp's 8-row kernel switch: each request decoded on
    its own, all four packed (16 samples: calls of 7 rows, or wide calls of 8-16 rows), and all four in reverse
    order with another `parallel` give the same texts."""
    requests = _requests()
    backend = _backend(session_root, parallel=alone_parallel)
    alone = [_texts(Engine(backend, cache=None), [request])[0] for request in requests]
    backend.close()
    backend = _backend(session_root, parallel=packed_parallel)
    packed = _texts(Engine(backend, cache=None), requests)
    rows_per_call = backend.decode_times.tokens / max(1, backend.decode_times.steps)
    backend.close()
    backend = _backend(session_root, parallel=reversed_parallel)
    reversed_order = _texts(Engine(backend, cache=None), requests[::-1])[::-1]
    backend.close()
    assert packed == alone == reversed_order
    assert rows_per_call > 4, "samples of several requests share their decode calls"


def test_a_partly_cached_request_decodes_only_its_missing_samples_and_gives_the_uninterrupted_texts(
    session_root: Path, tmp_path: Path
) -> None:
    """What a kill leaves behind (some samples of a request cached, the rest not) resumes to the same texts."""
    requests = _requests()
    backend = _backend(session_root, parallel=4)
    whole = Engine(backend, CompletionCache(tmp_path / "whole.sqlite"))
    reference = _texts(whole, requests)
    whole.cache.close()  # type: ignore[union-attr]
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes((tmp_path / "whole.sqlite").read_bytes())
    with sqlite3.connect(cut) as con:
        keys = [k for (k,) in con.execute("select key from completions order by key")]
        con.executemany("delete from completions where key = ?", [(k,) for k in keys[::3]])
    resumed = Engine(backend, CompletionCache(cut))
    assert _texts(resumed, requests) == reference
    assert resumed.stats.model_calls == len(keys[::3]) and resumed.stats.cache_hits == len(keys) - len(keys[::3])
    assert resumed.stats.completion_tokens < whole.stats.completion_tokens, "only the missing samples decode"
    resumed.close()


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from engines.config import EngineConfig, build_engine
from tests.engines.test_batched import _requests
engine = build_engine(EngineConfig(model={model!r}, n_ctx=512, parallel=2), Path({models!r}), Path({cache!r}))
engine.generate(_requests(), progress=False)
"""


@pytest.mark.timeout(900)
def test_sigkill_mid_generation_then_resume_gives_the_uninterrupted_texts(session_root: Path, tmp_path: Path) -> None:
    ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    cache = tmp_path / "killed.sqlite"
    script = CHILD.format(repo=str(REPO), model=SMALL_MODEL, models=str(session_root / "models"), cache=str(cache))
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while cached_completions(cache) < 1 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    at_kill = cached_completions(cache)
    assert 1 <= at_kill < 16, f"the kill must land mid-generation ({at_kill} of 16 samples cached)"
    backend = _backend(session_root, parallel=2)
    resumed = Engine(backend, CompletionCache(cache))
    texts = _texts(resumed, _requests())
    assert resumed.stats.cache_hits == at_kill and resumed.stats.model_calls == 16 - at_kill
    resumed.close()
    uninterrupted = _backend(session_root, parallel=2)
    assert texts == _texts(Engine(uninterrupted, cache=None), _requests())
    uninterrupted.close()


def test_a_cache_written_before_batching_is_still_hit(session_root: Path, tmp_path: Path) -> None:
    """`pre_batching_cache.jsonl` was written by the one-at-a-time backend (commit 432bb54): its keys must be
    the keys the batched backend asks for, so no stored sample is paid for again."""
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    with sqlite3.connect(tmp_path / "old.sqlite") as con:
        CompletionCache(tmp_path / "old.sqlite").close()
        con.executemany(
            "insert into completions (key, backend, model_id, value) values (?, ?, ?, ?)",
            [(r["key"], r["backend"], r["model_id"], json.dumps(r["value"])) for r in rows],
        )
    sampling = SamplingParams(temperature=0.8, max_tokens=12, n=2, seed=3)
    requests = [
        ChatRequest((Message("system", "Answer with a number only."), Message("user", q)), sampling)
        for q in ("What is 7 + 5?", "What is 9 * 6?")
    ]
    backend = _backend(session_root, parallel=4)
    calls = [SampleCall(r.messages, r.sampling, i) for r in requests for i in range(2)]
    assert {cache_key("embedded", SMALL_MODEL, backend.model_revision, c) for c in calls} == {r["key"] for r in rows}
    engine = Engine(backend, CompletionCache(tmp_path / "old.sqlite"))
    groups = engine.generate(requests, progress=False)
    assert engine.stats.model_calls == 0 and engine.stats.cache_hits == 4
    stored = {r["value"]["text"] for r in rows}
    assert {c.text for g in groups for c in g} == stored
    engine.close()


def test_stop_strings_length_limits_and_a_prompt_too_long_for_the_window(session_root: Path) -> None:
    backend = _backend(session_root, parallel=4)
    count = (Message("user", "Count from 1 to 30, separated by commas."),)
    calls = [
        SampleCall(count, SamplingParams(temperature=0.0, max_tokens=40, stop=("5",)), 0),
        SampleCall(count, SamplingParams(temperature=0.0, max_tokens=6), 0),
        SampleCall((Message("user", "word " * 600),), SamplingParams(max_tokens=8), 0),
    ]
    out = dict(backend.complete(calls))
    assert out[0].finish_reason == "stop" and "5" not in out[0].text and "4" in out[0].text
    assert out[1].finish_reason == "length" and out[1].completion_tokens == 6
    assert out[2].finish_reason == "error" and "n_ctx=512" in (out[2].error or "")
    backend.close()
