"""vLLM offline (`vllm.LLM`) on a GPU as a backend: one batched `chat` call per engine call.

vLLM is optional and import-guarded: Gradus installs and runs without it. Prefix caching is on so the K
samples of one prompt share its prefill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from engines.base import Completion, ModelIdentity, SampleCall
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
        if not calls:
            return
        params = [
            self._sampling_params_cls(
                n=1,
                temperature=c.sampling.temperature,
                top_p=c.sampling.top_p,
                max_tokens=c.sampling.max_tokens,
                seed=c.sample_seed,
                stop=list(c.sampling.stop) or None,
            )
            for c in calls
        ]
        started = time.perf_counter()
        outputs = self._llm.chat([c.messages_json() for c in calls], sampling_params=params, use_tqdm=False)
        per_call = (time.perf_counter() - started) / len(calls)
        for position, output in enumerate(outputs):
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

    def close(self) -> None:
        self._llm = None
