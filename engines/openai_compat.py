"""Any OpenAI-compatible chat server (vLLM serve, SGLang, llama.cpp server) as a backend.

Calls run concurrently (bounded), each with a timeout; 429, 5xx and connection failures are retried with
jittered exponential backoff. A call that still fails, or a response that is not a well-formed chat completion,
becomes a completion with `finish_reason="error"` and the reason — a failed row downstream, never a crash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from engines.base import Completion, ModelIdentity, SampleCall

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
    ) -> None:
        super().__init__(model, model_revision or model)
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
        payload = {
            "model": self.model_id,
            "messages": call.messages_json(),
            "temperature": call.sampling.temperature,
            "top_p": call.sampling.top_p,
            "max_tokens": call.sampling.max_tokens,
            "seed": call.sample_seed,
            "n": 1,
        }
        if call.sampling.stop:
            payload["stop"] = list(call.sampling.stop)
        post = retry(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self._max_retries),
            wait=wait_random_exponential(multiplier=0.5, max=20),
            reraise=True,
        )(self._post)
        try:
            body = post(payload)
        except (_Retryable, httpx.HTTPError) as exc:
            return _failed(f"{type(exc).__name__}: {exc}", started)
        except ValueError as exc:
            return _failed(str(exc), started)
        return _parse_chat_completion(body, started)

    def _post(self, payload: dict[str, object]) -> dict[str, object]:
        response = self._client.post("/v1/chat/completions", json=payload)
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


def _parse_chat_completion(body: dict[str, object], started: float) -> Completion:
    try:
        choice = body["choices"][0]  # type: ignore[index]
        text = choice["message"]["content"] or ""
        if not isinstance(text, str):
            raise TypeError("message.content is not a string")
    except (KeyError, IndexError, TypeError) as exc:
        return _failed(f"malformed chat completion ({exc!r}): {json.dumps(body)[:200]}", started)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return Completion(
        text=text,
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),  # type: ignore[union-attr]
        completion_tokens=int(usage.get("completion_tokens", 0) or 0),  # type: ignore[union-attr]
        latency_s=time.perf_counter() - started,
    )
