"""The embedded default backend: a GGUF model run on the CPU in-process through llama-cpp-python.

Chat calls go through llama.cpp's chat handler. Open-turn calls (raw prefix, `engines.base.open_turn_prompt`)
render the GGUF's own chat template (`tokenizer.chat_template`, ChatML when the file has none) with llama.cpp's
Jinja formatter, cut it where the open message ends and continue it with `create_completion`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engines.base import CHATML_TEMPLATE, Completion, ModelIdentity, SampleCall, open_turn_prompt
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
        self._template: Any = None  # the Jinja formatter for open-turn prompts, built on first use

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        for position, call in enumerate(calls):
            yield position, self._one(call)

    def _one(self, call: SampleCall) -> Completion:
        started = time.perf_counter()
        try:
            if call.is_open_turn:
                out: Any = self._continue_open_turn(call)
                choice = out["choices"][0]
                text = choice.get("text") or ""
            else:
                out = self._llm.create_chat_completion(
                    messages=call.messages_json(),  # type: ignore[arg-type]
                    temperature=call.sampling.temperature,
                    top_p=call.sampling.top_p,
                    max_tokens=call.sampling.max_tokens,
                    stop=list(call.sampling.stop) or None,
                    seed=call.sample_seed,
                )
                choice = out["choices"][0]
                text = choice["message"].get("content") or ""
        except (ValueError, RuntimeError) as exc:  # e.g. a prompt longer than the context window
            return Completion(
                text="",
                finish_reason="error",
                error=f"llama.cpp: {exc}"[:500],
                latency_s=time.perf_counter() - started,
            )
        usage = out.get("usage") or {}
        return Completion(
            text=text,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=time.perf_counter() - started,
        )

    def _continue_open_turn(self, call: SampleCall) -> Any:
        prompt = open_turn_prompt(call.messages, self.render_template)
        # Tokenized here with special tokens parsed and no BOS added: the template writes any BOS itself, exactly
        # as llama.cpp's chat handler does for chat calls.
        tokens = self._llm.tokenize(prompt.text.encode("utf-8"), add_bos=False, special=True)
        return self._llm.create_completion(
            prompt=tokens,
            temperature=call.sampling.temperature,
            top_p=call.sampling.top_p,
            max_tokens=call.sampling.max_tokens,
            stop=prompt.stop(call.sampling.stop) or None,
            seed=call.sample_seed,
        )

    def render_template(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template (from the GGUF, else ChatML) rendered without a generation prompt."""
        if self._template is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
            self._template = Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self._llm.token_eos()),
                bos_token=self._token_text(self._llm.token_bos()),
                add_generation_prompt=False,
            )
        return str(self._template(messages=messages).prompt)

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._llm.detokenize([token], special=True).decode("utf-8", "replace")

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if close is not None:
            close()
