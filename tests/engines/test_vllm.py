"""The vLLM offline backend. The real test needs a CUDA GPU and is skipped here with the reason; the mapping
of requests and outputs is checked with a test double of `vllm.LLM`, named as such (no GPU in CI)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.cache import CompletionCache
from engines.config import EngineConfig, build_backend
from engines.errors import ConfigError
from engines.vllm_offline import VLLMBackend

PROMPT = (Message("user", "What is 2 + 2?"),)


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


@dataclass
class _FakeSamplingParamsForTestsNoGPU:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    stop: list[str] | None


@dataclass
class _Sample:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Sample]


class FakeVLLMForTestsNoGPU:
    """Stands in for `vllm.LLM` only because this machine has no GPU: echoes what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, list]] = []

    def chat(self, messages: list, sampling_params: list, use_tqdm: bool = False) -> list[_Output]:
        self.calls.append((messages, sampling_params))
        return [_Output([1, 2, 3], [_Sample(f"seed={p.seed}", [9] * p.max_tokens, "length")]) for p in sampling_params]


def test_vllm_backend_maps_requests_and_outputs_with_test_double(tmp_path: Path) -> None:
    fake = FakeVLLMForTestsNoGPU()
    backend = VLLMBackend("Qwen/Qwen2.5-0.5B-Instruct", llm=fake, sampling_params_cls=_FakeSamplingParamsForTestsNoGPU)
    engine = Engine(backend, CompletionCache(tmp_path / "c.sqlite"))
    [group] = engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=4, n=3, seed=7))], progress=False)
    messages, params = fake.calls[0]
    assert len(messages) == 3 and messages[0] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert len({p.seed for p in params}) == 3 and all(p.n == 1 and p.max_tokens == 4 for p in params)
    assert [c.text for c in group] == [f"seed={p.seed}" for p in params]
    assert all(c.finish_reason == "length" and c.completion_tokens == 4 and c.prompt_tokens == 3 for c in group)
    engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=4, n=3, seed=7))], progress=False)
    assert len(fake.calls) == 1, "the second request is served from the cache"


def test_vllm_backend_without_vllm_is_a_config_error(tmp_path: Path) -> None:
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed here; the missing-package error cannot be shown")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match="vllm"):
        build_backend(EngineConfig(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct"), tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not _has_gpu(), reason="no CUDA GPU on this machine: the real vLLM backend test needs one")
def test_vllm_backend_on_gpu(tmp_path: Path) -> None:  # pragma: no cover - GPU only
    backend = build_backend(EngineConfig(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct"), tmp_path)
    engine = Engine(backend, None)
    [group] = engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=16, n=2, seed=1))], progress=False)
    assert all(c.ok and c.completion_tokens > 0 for c in group)
