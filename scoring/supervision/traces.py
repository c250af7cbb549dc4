"""Reasoning traces: the versioned prompt an engine role answers, its sampling, and one `supervision_traces` row
per trace (verdict, the student's difficulty, length and the step-wise error estimate).

Traces are sampled through the `Engine`, so every one is cached by (model, messages, sampling, seed, sample index):
a rerun makes no model call. Sample `i` of a problem has its own derived seed, which is what makes several samples
of one engine independent "weak teachers" for the `weak_to_strong` policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engines import ChatRequest, Completion, Message, SamplingParams
from engines.base import canonical_json, sha256_hex
from scoring.supervision.arithmetic import ArithmeticTextError, evaluate, normalize_operators
from scoring.supervision.steps import StepCheck
from synthesis.problem import Problem, Verdict

TRACE_PROMPT_VERSION = "trace_steps_v1"
TRACE_PROMPTS: dict[str, tuple[str, str]] = {  # version -> (system prompt, suffix appended to the question)
    # Steps on their own lines with every calculation written out: what the step checker can read.
    "trace_steps_v1": (
        "You are a careful math teacher. Solve the problem step by step, one step per line. Write every "
        "calculation out in full, like `12 * 7 = 84`. End with the final answer as \\boxed{answer}.",
        "",
    ),
}
MAX_ANSWER_KEY_CHARS = 200


class TraceSampling(BaseModel):
    """How traces are sampled from each configured engine role (all of it goes into the sampling hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Literal["trace_steps_v1"] = Field(TRACE_PROMPT_VERSION, description="the versioned trace prompt")
    samples: int = Field(4, ge=1, le=64, description="traces per problem and role (independent seeded samples)")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=16)
    seed: int = 0


def trace_messages(question: str, prompt: str) -> list[dict[str, str]]:
    """The chat prompt of a trace (system + user), as role/content dicts: what an SFT export trains on."""
    system, suffix = TRACE_PROMPTS[prompt]
    return [{"role": "system", "content": system}, {"role": "user", "content": question + suffix}]


def trace_request(problem: Problem, sampling: TraceSampling) -> ChatRequest:
    """The request for a problem's `samples` traces."""
    params = SamplingParams(
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        max_tokens=sampling.max_tokens,
        n=sampling.samples,
        seed=sampling.seed,
    )
    messages = tuple(Message(m["role"], m["content"]) for m in trace_messages(problem.question, sampling.prompt))  # type: ignore[arg-type]
    return ChatRequest(messages, params)


def trace_sampling_hash(sampling: TraceSampling) -> str:
    """sha256 of the canonical trace sampling config (the number of samples aside: it only adds sample indices)."""
    return sha256_hex(canonical_json(sampling.model_dump(exclude={"samples"})))


def answer_key(extracted: str | None) -> str | None:
    """A final answer normalized for agreement: an exact number (`0.50`, `1/2`, `\\frac{1}{2}` → `1/2`) when it
    is one, else its text without spaces, `$` and a trailing period, lowercased."""
    if extracted is None:
        return None
    text = extracted.strip()[:MAX_ANSWER_KEY_CHARS]
    try:
        value = evaluate(normalize_operators(text))
        return f"{value.numerator}/{value.denominator}"
    except ArithmeticTextError:
        return "".join(text.replace("$", "").split()).rstrip(".").lower() or None


def trace_row(
    problem: Problem,
    completion: Completion,
    verdict: Verdict,
    *,
    identity: Mapping[str, Any],
    grade: Mapping[str, Any],
    steps: StepCheck,
) -> dict[str, Any]:
    """One `supervision_traces` row. `identity` holds student_id, role, model_id, model_revision, sampling_hash,
    prompt_version and verifier_version; `grade` the student's difficulty row of the problem; `steps` the trace's
    step check (a registered checker's, `STEP_CHECKERS`, or the teacher's judgement, `judge.py`)."""
    return {
        **identity,
        "problem_id": problem.problem_id,
        "sample_index": completion.sample_index,
        "completion": completion.text,
        "extracted_answer": verdict.extracted,
        "answer_key": answer_key(verdict.extracted),
        "verdict": verdict.label,
        "verdict_reason": verdict.reason,
        "finish_reason": completion.finish_reason,
        "completion_tokens": completion.completion_tokens,
        "trace_chars": len(completion.text),
        "n_steps": steps.n_steps,
        "n_checked_steps": steps.n_checked_steps,
        "n_error_steps": steps.n_error_steps,
        "n_claims": steps.n_claims,
        "n_wrong_claims": steps.n_wrong_claims,
        "step_error_rate": steps.step_error_rate,
        "first_step_error": steps.first_error,
        "step_method": steps.method,
        "step_truncated": steps.truncated,
        **{name: grade[name] for name in ("student_revision", "n", "k", "pass_rate", "post_mean")},
    }
