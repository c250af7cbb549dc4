"""The embedded default backend: a GGUF model run on the CPU in-process through llama-cpp-python."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engines.base import Completion, ModelIdentity, SampleCall
from engines.errors import ConfigError


class EmbeddedBackend(ModelIdentity):
    """llama.cpp on the CPU. Calls run one at a time (llama.cpp already uses every thread it is given);
    consecutive samples of one prompt reuse its evaluated prefix, so keep a request's samples together."""

    name = "embedded"

    def __init__(
        self,
        model_path: Path,
        model_id: str,
        model_revision: str,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_format: str | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - llama-cpp-python is a core dependency
            raise ConfigError("the embedded backend needs llama-cpp-python: pip install -e .") from exc
        super().__init__(model_id, model_revision)
        self._llm = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            chat_format=chat_format,
            verbose=False,
        )

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        for position, call in enumerate(calls):
            yield position, self._one(call)

    def _one(self, call: SampleCall) -> Completion:
        started = time.perf_counter()
        try:
            out: Any = self._llm.create_chat_completion(
                messages=call.messages_json(),  # type: ignore[arg-type]
                temperature=call.sampling.temperature,
                top_p=call.sampling.top_p,
                max_tokens=call.sampling.max_tokens,
                stop=list(call.sampling.stop) or None,
                seed=call.sample_seed,
            )
        except (ValueError, RuntimeError) as exc:  # e.g. a prompt longer than the context window
            return Completion(
                text="",
                finish_reason="error",
                error=f"llama.cpp: {exc}"[:500],
                latency_s=time.perf_counter() - started,
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=time.perf_counter() - started,
        )

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if close is not None:
            close()
