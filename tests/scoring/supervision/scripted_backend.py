"""A test double of a model backend: it answers each sample with a scripted text, so the stage's real `Engine`
(cache, fan-out, accounting) runs without a model. Used where the texts matter and no real model is needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from engines.base import Completion, ModelIdentity, SampleCall
from engines.cache import CompletionCache
from engines.engine import Engine

Script = Callable[[str, int], str | None]
"""(user message, sample index) → the completion text, or None for a failed call."""


class ScriptedBackendTestDouble(ModelIdentity):
    """Answers `script(question, sample_index)`; counts the samples it was asked for (cache misses)."""

    name = "scripted-test-double"

    def __init__(self, script: Script, model_id: str = "scripted-teacher", revision: str = "r1") -> None:
        super().__init__(model_id, revision)
        self.script = script
        self.calls = 0

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        for position, call in enumerate(calls):
            self.calls += 1
            user = next(m.content for m in call.messages if m.role == "user")
            text = self.script(user, call.sample_index)
            if text is None:
                yield position, Completion("", "error", error="scripted failure")
            else:
                yield position, Completion(text, "stop", prompt_tokens=10, completion_tokens=len(text.split()))

    def close(self) -> None:
        pass


def scripted_engine(script: Script, cache_path, **identity: str) -> tuple[Engine, ScriptedBackendTestDouble]:
    """A real `Engine` with a real completion cache at `cache_path` in front of the test double."""
    backend = ScriptedBackendTestDouble(script, **identity)
    return Engine(backend, CompletionCache(cache_path)), backend
