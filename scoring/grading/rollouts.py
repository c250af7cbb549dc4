"""Rollouts: K sampled answers per problem from the student, each verified, as rows of the `rollouts` table.

A backend failure (timeout, garbage from a server) becomes a rollout with verdict `error` and the reason, so
nothing is silently lost; the cache does not keep failures, so the next run retries them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import Completion, canonical_json, sha256_hex
from scoring.grading.verify import CheckItem, Verifier
from scoring.schemas import ROLLOUTS, VERDICT_AUDIT, to_table
from synthesis.problem import Problem, Verdict

PROMPT_VERSION = "solve_boxed_v1"  # the default prompt
PROMPTS: dict[str, tuple[str, str]] = {  # version -> (system prompt, suffix appended to the question)
    "solve_boxed_v1": (
        "You are a careful math solver. Think step by step, briefly, then give only the final answer as "
        "\\boxed{answer}.",
        "",
    ),
    # No working: a rollout costs a few tokens, for grading many problems cheaply on a CPU (the bench recording).
    "answer_only_v1": ("You are a helpful assistant.", "\nGive only the final answer in \\boxed{}."),
    # The 1.5B student ignores answer_only_v1 and starts working (every sample hits a 32-token budget with no
    # answer); told in both turns not to explain, it answers in a few tokens (a bare number or \boxed{}).
    "answer_only_v2": (
        "Answer with the final result only, as \\boxed{answer}. Do not explain or show any work.",
        "\nReply with only \\boxed{answer}.",
    ),
}


class RolloutConfig(BaseModel):
    """How the student is sampled. Everything but `k` goes into the sampling hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(4, ge=1, le=1024, description="rollouts per problem")
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int = 0
    prompt: Literal["solve_boxed_v1", "answer_only_v1", "answer_only_v2"] = Field(
        PROMPT_VERSION, description="the student's system prompt (versioned; part of the sampling hash)"
    )


def sampling_hash(config: RolloutConfig) -> str:
    """sha256 of the canonical sampling config: temperature, top_p, max_tokens, stop, seed, prompt version."""
    return sha256_hex(
        canonical_json(
            {
                "temperature": config.temperature,
                "top_p": config.top_p,
                "max_tokens": config.max_tokens,
                "stop": [],
                "seed": config.seed,
                "prompt_version": config.prompt,
            }
        )
    )


def solve_request(
    problem: Problem, config: RolloutConfig, *, first_sample: int = 0, count: int | None = None
) -> ChatRequest:
    """The student's request for samples `first_sample .. first_sample + count - 1` (default: all `k`)."""
    sampling = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        n=config.k if count is None else count,
        seed=config.seed,
    )
    system, suffix = PROMPTS[config.prompt]
    messages = (Message("system", system), Message("user", problem.question + suffix))
    return ChatRequest(messages, sampling, first_sample=first_sample)


@dataclass(frozen=True, slots=True)
class RolloutResult:
    rollouts: pa.Table  # ROLLOUTS rows, one per sample (failed engine calls included, verdict "error")
    audit: pa.Table  # VERDICT_AUDIT rows: every applicable checker's verdict per verified sample


def run_rollouts(
    problems: Sequence[Problem],
    engine: Engine,
    *,
    student_id: str,
    config: RolloutConfig,
    verifier: Verifier,
    progress: bool = True,
    sample_ranges: Sequence[tuple[int, int]] | None = None,
) -> RolloutResult:
    """Sample answers per problem, verify each, and return the rollouts and the verdict audit.

    By default each problem gets samples 0..k-1; `sample_ranges` gives a `(first_sample, count)` per problem
    instead (a round of sequential sampling)."""
    ranges = sample_ranges if sample_ranges is not None else [(0, config.k)] * len(problems)
    if len(ranges) != len(problems):
        raise ValueError(f"{len(ranges)} sample ranges for {len(problems)} problems")
    requests = [
        solve_request(p, config, first_sample=first, count=count)
        for p, (first, count) in zip(problems, ranges, strict=True)
        if count > 0
    ]
    problems = [p for p, (_, count) in zip(problems, ranges, strict=True) if count > 0]
    completions = engine.generate(requests, progress=progress, desc="rollouts")
    s_hash = sampling_hash(config)
    items = [
        CheckItem(p.answer, c.text, p) for p, group in zip(problems, completions, strict=True) for c in group if c.ok
    ]
    audits = iter(verifier.audit(items))
    rows, audit_rows = [], []
    for problem, group in zip(problems, completions, strict=True):
        for completion in group:
            key = {
                "problem_id": problem.problem_id,
                "student_id": student_id,
                "student_revision": engine.model_revision,
                "sampling_hash": s_hash,
                "sample_index": completion.sample_index,
            }
            row, audited = _sample_rows(key, completion, next(audits) if completion.ok else None, verifier.version)
            rows.append(row)
            audit_rows += audited
    return RolloutResult(to_table(rows, ROLLOUTS), to_table(audit_rows, VERDICT_AUDIT))


def _sample_rows(
    key: dict[str, object], completion: Completion, verdicts: list[Verdict] | None, verifier_version: str
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """One sample's `rollouts` row (decided by the first verdict, or `error` when the engine call failed) and
    its `verdict_audit` rows, one per checker that ran."""
    if verdicts is None:
        decided, audit = Verdict("error", f"engine: {completion.error}", None, "engine"), []
    else:
        decided = verdicts[0]
        audit = [
            {**key, "rule": v.rule, "verdict": v.label, "reason": v.reason, "extracted_answer": v.extracted}
            for v in verdicts
        ]
    row = {
        **key,
        "completion": completion.text,
        "extracted_answer": decided.extracted,
        "verdict": decided.label,
        "verdict_reason": decided.reason,
        "verifier_version": verifier_version,
        "verifier_rule": decided.rule,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "finish_reason": completion.finish_reason,
        "latency_s": round(completion.latency_s, 4),
    }
    return row, audit
