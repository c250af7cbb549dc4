"""The embedded default backend: a GGUF model run on the CPU in-process through llama-cpp-python.

Prompts are the GGUF's own chat template (`tokenizer.chat_template`, ChatML when the file has none) rendered with
llama-cpp-python's Jinja formatter: with a generation prompt for chat calls, and cut where the open message ends
for open-turn calls (raw prefix, `engines.base.open_turn_prompt`). Samples are decoded together in batches
(`engines.llama_batch`): a request's K samples share one prompt evaluation and advance together, up to
`parallel` at a time, one token per `llama_decode`; each request is its own decode group (`batch_plan`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engines.base import CHATML_TEMPLATE, Completion, ModelIdentity, SampleCall, open_turn_prompt
from engines.errors import ConfigError
from engines.llama_batch import BatchDecoder, DecodeTimes, PreparedCall


def default_parallel() -> int:
    """Sequences decoded together by default: 2 per core, at most 32 (4 on 2 cores). Runs decode one request per
    batch, so with the default K = 4 a batch never holds more than 4; on our 2 cores a batch of 4 gave the 1.5B
    student 2.3x the one-at-a-time tokens/s, 8 barely more (2.5x) and 16 3.8x (`bench/results/
    engine_throughput.md`). Small batches also commit finished samples to the cache steadily, so a killed run
    loses little."""
    return max(2, min(32, 2 * available_cores()))


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class EmbeddedBackend(ModelIdentity):
    """llama.cpp on the CPU, decoding many samples in one batch (`engines.llama_batch`).

    `batch_plan` cuts a call list into decode groups (one per request); the engine hands `complete` one group at
    a time, the same groups on every run, so a sample's text never depends on which other samples happened to be
    missing from the cache or were sent along with it."""

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
        # This Llama object is the tokenizer and the loaded weights; its own context is kept tiny, and decoding
        # happens in the batch decoder's context over the same weights.
        self._llm = Llama(model_path=str(model_path), n_ctx=256, n_threads=threads, verbose=False)
        self.parallel = parallel or default_parallel()
        self.n_ctx = n_ctx
        self._decoder = BatchDecoder(self._llm.model, parallel=self.parallel, n_ctx=n_ctx, n_threads=threads)
        self._templates: dict[bool, Any] = {}  # Jinja formatters by add_generation_prompt, built on first use

    def batch_plan(self, calls: Sequence[SampleCall]) -> list[list[int]]:
        """Decode groups: one per request (a run of calls with one prompt and sampling). A sample's text then
        depends on its own request alone, not on which other requests a call list, a Ray batch or an adaptive
        round happens to hold; packing several requests into one group made Ray's texts differ from one
        process's. Within a group up to `parallel` samples decode together."""
        return [list(run) for run in _request_runs(calls)]

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        """Decode `calls` as one group; yield `(position, completion)` as samples finish."""
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


def _request_runs(calls: Sequence[SampleCall]) -> Iterator[range]:
    """Positions of consecutive calls that share messages and sampling (one request's samples)."""
    start = 0
    for position in range(1, len(calls) + 1):
        if position == len(calls) or (
            calls[position].messages != calls[start].messages or calls[position].sampling != calls[start].sampling
        ):
            yield range(start, position)
            start = position
