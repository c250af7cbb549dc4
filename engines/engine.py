"""The engine every caller uses: a backend behind the persistent cache, with accounting and a progress bar."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tqdm.auto import tqdm

from engines.base import Backend, ChatRequest, Completion, SampleCall
from engines.cache import CompletionCache, cache_key


@dataclass(slots=True)
class EngineStats:
    """What a run cost: cache hits, real model calls, failed calls, and tokens and seconds spent generating."""

    cache_hits: int = 0
    model_calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0

    @property
    def hit_rate(self) -> float:
        total = self.cache_hits + self.model_calls
        return self.cache_hits / total if total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cache_hits": self.cache_hits,
            "model_calls": self.model_calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "generation_seconds": round(self.generation_seconds, 3),
            "cache_hit_rate": round(self.hit_rate, 4),
        }


class Engine:
    """Fans requests out into samples, serves what the cache has, and sends only the rest to the backend."""

    def __init__(self, backend: Backend, cache: CompletionCache | None) -> None:
        self.backend = backend
        self.cache = cache
        self.stats = EngineStats()

    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def model_revision(self) -> str:
        return self.backend.model_revision

    def generate(
        self, requests: Sequence[ChatRequest], *, progress: bool = True, desc: str = "generating"
    ) -> list[list[Completion]]:
        """Return, for each request, its `sampling.n` completions in sample-index order (from `first_sample`)."""
        calls = [
            SampleCall(req.messages, req.sampling, index)
            for req in requests
            for index in range(req.first_sample, req.first_sample + req.sampling.n)
        ]
        keys = [cache_key(self.backend.name, self.model_id, self.model_revision, call) for call in calls]
        results: list[Completion | None] = [None] * len(calls)
        if self.cache is not None:
            hits = self.cache.get_many(keys)
            for pos, key in enumerate(keys):
                if key in hits:
                    results[pos] = replace(hits[key], cached=True, sample_index=calls[pos].sample_index)
        missing = [pos for pos, done in enumerate(results) if done is None]
        self.stats.cache_hits += len(calls) - len(missing)
        bar = tqdm(
            total=len(calls),
            initial=len(calls) - len(missing),
            desc=desc,
            unit="sample",
            disable=not progress,
            leave=False,
        )
        started = time.perf_counter()
        try:
            if missing:
                for local, completion in self.backend.complete([calls[pos] for pos in missing]):
                    pos = missing[local]
                    completion = replace(completion, sample_index=calls[pos].sample_index, cached=False)
                    results[pos] = completion
                    self._account(completion)
                    if self.cache is not None:
                        self.cache.put(keys[pos], self.backend.name, self.model_id, completion)
                    bar.update(1)
        finally:
            bar.close()
            self.stats.generation_seconds += time.perf_counter() - started
        grouped: list[list[Completion]] = []
        cursor = 0
        for req in requests:
            chunk = results[cursor : cursor + req.sampling.n]
            grouped.append([c if c is not None else _missing(c) for c in chunk])
            cursor += req.sampling.n
        return grouped

    def _account(self, completion: Completion) -> None:
        self.stats.model_calls += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        if not completion.ok:
            self.stats.failed_calls += 1

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _missing(_: None) -> Completion:
    # A backend that yields fewer results than calls is a bug in the backend; record it rather than crash.
    return Completion(text="", finish_reason="error", error="backend returned no completion for this sample")
