"""Any OpenAI-compatible chat server (vLLM serve, SGLang, llama.cpp server) as a backend.

Calls run concurrently (bounded), each with a timeout; 429, 5xx and connection failures are retried with
jittered exponential backoff. A call that still fails, or a response that is not a well-formed chat completion,
becomes a completion with `finish_reason="error"` and the reason — a failed row downstream, never a crash.

Open-turn (raw-prefix) calls go to `/v1/completions`: the server never sees the messages, so the prompt is built
here from a chat template — `chat_template` (Jinja, the Hugging Face convention: `messages`,
`add_generation_prompt`, `bos_token`, `eos_token`) or, by default, ChatML (`<|im_start|>role\ncontent<|im_end|>`,
right for Qwen models; pass the served model's own template for any other family). `bos_token` and `eos_token`
render empty, since the server adds BOS itself when it tokenizes a completions prompt. The template's end-of-turn
marker is sent as a stop string.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from engines.base import CHATML_TEMPLATE, Completion, ModelIdentity, SampleCall, open_turn_prompt
from engines.errors import ConfigError

_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class _Retryable(Exception):
    pass


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


class OpenAICompatBackend(ModelIdentity):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        model_revision: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        chat_template: str | None = None,
    ) -> None:
        super().__init__(model, model_revision or model)
        self._template = compile_chat_template(chat_template or CHATML_TEMPLATE)
        self._max_concurrency = max(1, max_concurrency)
        self._max_retries = max(1, max_retries)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(max_connections=self._max_concurrency),
        )

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        with ThreadPoolExecutor(max_workers=self._max_concurrency) as pool:
            futures = {pool.submit(self._one, call): pos for pos, call in enumerate(calls)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _one(self, call: SampleCall) -> Completion:
        started = time.perf_counter()
        payload: dict[str, object] = {
            "model": self.model_id,
            "temperature": call.sampling.temperature,
            "top_p": call.sampling.top_p,
            "max_tokens": call.sampling.max_tokens,
            "seed": call.sample_seed,
            "n": 1,
        }
        stop = list(call.sampling.stop)
        if call.is_open_turn:
            try:
                prompt = open_turn_prompt(call.messages, self.render_template)
            except (ValueError, jinja2.TemplateError) as exc:
                return _failed(f"chat template: {exc}", started)
            path, payload["prompt"], stop = "/v1/completions", prompt.text, prompt.stop(stop)
        else:
            path, payload["messages"] = "/v1/chat/completions", call.messages_json()
        if stop:
            payload["stop"] = stop
        post = retry(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self._max_retries),
            wait=wait_random_exponential(multiplier=0.5, max=20),
            reraise=True,
        )(self._post)
        try:
            body = post(path, payload)
        except (_Retryable, httpx.HTTPError) as exc:
            return _failed(f"{type(exc).__name__}: {exc}", started)
        except ValueError as exc:
            return _failed(str(exc), started)
        return _parse_completion(body, started, open_turn=call.is_open_turn)

    def render_template(self, messages: list[dict[str, str]]) -> str:
        """The configured chat template (default ChatML) rendered without a generation prompt."""
        return self._template.render(messages=messages, add_generation_prompt=False, bos_token="", eos_token="")

    def _post(self, path: str, payload: dict[str, object]) -> dict[str, object]:
        response = self._client.post(path, json=payload)
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code} from server: {response.text[:300]}")
        if len(response.content) > _MAX_RESPONSE_BYTES:
            raise ValueError(f"response of {len(response.content)} bytes exceeds {_MAX_RESPONSE_BYTES}")
        try:
            body = json.loads(response.content)
        except json.JSONDecodeError as exc:
            raise ValueError(f"server sent invalid JSON ({exc}): {response.text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise ValueError(f"server sent JSON that is not an object: {response.text[:200]!r}")
        return body

    def close(self) -> None:
        self._client.close()


def _failed(reason: str, started: float) -> Completion:
    return Completion(text="", finish_reason="error", error=reason[:500], latency_s=time.perf_counter() - started)


def compile_chat_template(template: str) -> jinja2.Template:
    """A chat template compiled in Jinja's sandbox (templates are configuration, but never trusted with Python)."""

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"chat_template is not a valid Jinja template: {exc}") from None


def _parse_completion(body: dict[str, object], started: float, *, open_turn: bool) -> Completion:
    """A chat completion (`choices[0].message.content`) or, for open-turn calls, a text completion
    (`choices[0].text`); anything else is a failed completion with the reason."""
    kind = "text completion" if open_turn else "chat completion"
    try:
        choice = body["choices"][0]  # type: ignore[index]
        text = (choice["text"] if open_turn else choice["message"]["content"]) or ""
        if not isinstance(text, str):
            raise TypeError("the completion text is not a string")
    except (KeyError, IndexError, TypeError) as exc:
        return _failed(f"malformed {kind} ({exc!r}): {json.dumps(body)[:200]}", started)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=text,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),  # type: ignore[union-attr]
        completion_tokens=int(usage.get("completion_tokens", 0) or 0),  # type: ignore[union-attr]
        latency_s=time.perf_counter() - started,
    )
