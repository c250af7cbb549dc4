"""vLLM offline (`vllm.LLM`) on a GPU as a backend: one batched `chat` call per engine call (and one batched
`generate` call for its open-turn calls).

vLLM is optional and import-guarded: Gradus installs and runs without it. Prefix caching is on so the K
samples of one prompt share its prefill. Open-turn (raw-prefix) calls render the tokenizer's chat template
(`apply_chat_template`), cut it where the open message ends and continue it with `LLM.generate`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import jinja2

from engines.base import Completion, ModelIdentity, SampleCall, open_turn_prompt
from engines.errors import ConfigError


class VLLMBackend(ModelIdentity):
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        model_revision: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        llm: Any = None,
        sampling_params_cls: Any = None,
    ) -> None:
        super().__init__(model, model_revision or model)
        if llm is None or sampling_params_cls is None:
            try:
                import vllm
            except ImportError as exc:
                raise ConfigError(
                    "backend 'vllm' needs the vllm package on a CUDA machine (pip install vllm); "
                    "on CPU use backend 'embedded' or 'openai'"
                ) from exc
            llm = llm or vllm.LLM(
                model=model,
                tensor_parallel_size=tensor_parallel_size,
                enable_prefix_caching=True,
                max_model_len=max_model_len,
            )
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
        self._llm = llm
        self._sampling_params_cls = sampling_params_cls

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        chat = [pos for pos, c in enumerate(calls) if not c.is_open_turn]
        if chat:
            started = time.perf_counter()
            outputs = self._llm.chat(
                [calls[pos].messages_json() for pos in chat],
                sampling_params=[self._params(calls[pos], calls[pos].sampling.stop) for pos in chat],
                use_tqdm=False,
            )
            yield from _completions(chat, outputs, started)
        opened = [pos for pos, c in enumerate(calls) if c.is_open_turn]
        if not opened:
            return
        tokenizer = self._llm.get_tokenizer()

        def render(messages: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

        prompts, params, ready = [], [], []
        for pos in opened:
            try:
                prompt = open_turn_prompt(calls[pos].messages, render)
            except (ValueError, TypeError, jinja2.TemplateError) as exc:
                yield pos, Completion(text="", finish_reason="error", error=f"chat template: {exc}"[:500])
                continue
            # The template writes its special tokens (BOS included) itself, so none are added when encoding.
            prompts.append({"prompt_token_ids": tokenizer.encode(prompt.text, add_special_tokens=False)})
            params.append(self._params(calls[pos], prompt.stop(calls[pos].sampling.stop)))
            ready.append(pos)
        if ready:
            started = time.perf_counter()
            outputs = self._llm.generate(prompts, sampling_params=params, use_tqdm=False)
            yield from _completions(ready, outputs, started)

    def _params(self, call: SampleCall, stop: Sequence[str]) -> Any:
        return self._sampling_params_cls(
            n=1,
            temperature=call.sampling.temperature,
            top_p=call.sampling.top_p,
            max_tokens=call.sampling.max_tokens,
            seed=call.sample_seed,
            stop=list(stop) or None,
        )

    def close(self) -> None:
        self._llm = None


def _completions(positions: list[int], outputs: Sequence[Any], started: float) -> Iterator[tuple[int, Completion]]:
    """vLLM request outputs as `(position, Completion)`; the batch's time is shared evenly between its calls."""
    per_call = (time.perf_counter() - started) / max(1, len(positions))
    for position, output in zip(positions, outputs, strict=True):
        sample = output.outputs[0]
        yield (
            position,
            Completion(
                text=sample.text,
                finish_reason="length" if sample.finish_reason == "length" else "stop",
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=len(sample.token_ids or ()),
                latency_s=per_call,
            ),
        )
