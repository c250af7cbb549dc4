"""The embedded default backend: a GGUF model run on the CPU in-process through llama-cpp-python.

Prompts are the GGUF's own chat template (`tokenizer.chat_template`, ChatML when the file has none) rendered with
llama-cpp-python's Jinja formatter: with a generation prompt for chat calls, and cut where the open message ends
for open-turn calls (raw prefix, `engines.base.open_turn_prompt`). Samples are decoded together in batches
(`engines.llama_batch`): a request's K samples share one prompt evaluation, samples of several requests advance
together, up to `parallel` at a time, and a sample's text does not depend on what shares its batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engines.base import CHATML_TEMPLATE, Completion, ModelIdentity, SampleCall, open_turn_prompt
from engines.errors import ConfigError
from engines.llama_batch import ROWS_PER_DECODE, BatchDecoder, DecodeTimes, PreparedCall


def default_parallel() -> int:
    """Samples decoded together by default: one full narrow decode call (`ROWS_PER_DECODE`, 7), the fastest
    setting for one or two samples in flight (one row costs 64 ms, a wide call 208). From 8 on, decoding is wide
    (calls of at least 8 rows, repacked weights), several times faster with many samples in flight, e.g.
    `parallel: 16` for K = 16 or a large pool (`bench/results/engine_throughput.md`)."""
    return ROWS_PER_DECODE


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class EmbeddedBackend(ModelIdentity):
    """llama.cpp on the CPU, decoding many samples in one batch (`engines.llama_batch`).

    Decoding is batch-invariant, so the engine hands `complete` every missing call at once: a sample's text is
    the same whether it runs alone, beside other requests, after a resume or on a Ray worker."""

    name = "embedded"

    def __init__(
        self,
        model_path: Path,
        model_id: str,
        model_revision: str,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        parallel: int | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - llama-cpp-python is a core dependency
            raise ConfigError("the embedded backend needs llama-cpp-python: pip install -e .") from exc

        super().__init__(model_id, model_revision)
        threads = n_threads or available_cores()
        # This Llama object is the tokenizer and chat template only (no weights); the batch decoder loads the
        # weights itself, in the layout that keeps its results independent of the batch.
        self._llm = Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        self.parallel = parallel or default_parallel()
        self.n_ctx = n_ctx
        self._decoder = BatchDecoder(str(model_path), parallel=self.parallel, n_ctx=n_ctx, n_threads=threads)
        self._templates: dict[bool, Any] = {}  # Jinja formatters by add_generation_prompt, built on first use

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        """Decode `calls`; yield `(position, completion)` as samples finish."""
        prepared = [self._prepare(call) for call in calls]
        done: set[int] = set()
        try:
            for position, completion in self._decoder.run(prepared):
                done.add(position)
                yield position, completion
        except RuntimeError as exc:  # llama_decode failed: every sample not yet finished fails with the reason
            self._decoder.reset()
            for position in range(len(calls)):
                if position not in done:
                    yield position, Completion(text="", finish_reason="error", error=f"llama.cpp: {exc}"[:500])

    def _prepare(self, call: SampleCall) -> PreparedCall:
        stop = tuple(call.sampling.stop)
        try:
            if call.is_open_turn:
                prompt = open_turn_prompt(call.messages, self.render_template)
                text, stop = prompt.text, tuple(prompt.stop(call.sampling.stop))
            else:
                text = self._formatter(True)(messages=call.messages_json()).prompt
        except ValueError as exc:
            return PreparedCall([], call.sampling, call.sample_seed, stop, error=f"chat template: {exc}"[:500])
        # Special tokens parsed and no BOS added: the template writes any BOS itself, as llama.cpp's chat
        # handler does.
        tokens = self._llm.tokenize(str(text).encode("utf-8"), add_bos=False, special=True)
        error = None
        if not tokens:
            error = "the prompt is empty"
        elif len(tokens) >= self.n_ctx:
            error = f"the prompt has {len(tokens)} tokens, not fewer than the context window n_ctx={self.n_ctx}"
        return PreparedCall(tokens, call.sampling, call.sample_seed, stop, error=error)

    def render_template(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template (from the GGUF, else ChatML) rendered without a generation prompt."""
        return str(self._formatter(False)(messages=messages).prompt)

    def _formatter(self, add_generation_prompt: bool) -> Any:
        if add_generation_prompt not in self._templates:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
            self._templates[add_generation_prompt] = Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self._llm.token_eos()),
                bos_token=self._token_text(self._llm.token_bos()),
                add_generation_prompt=add_generation_prompt,
            )
        return self._templates[add_generation_prompt]

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._llm.detokenize([token], special=True).decode("utf-8", "replace")

    @property
    def decode_times(self) -> DecodeTimes:
        """Seconds spent in prompt evaluation, batched decoding and sampling since the backend started."""
        return self._decoder.times

    def close(self) -> None:
        self._decoder.close()
        close = getattr(self._llm, "close", None)
        if close is not None:
            close()
