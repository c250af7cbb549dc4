"""Rollouts: K sampled answers per problem from the student, each verified, as rows of the `rollouts` table.

A backend failure (timeout, garbage from a server) becomes a rollout with verdict `error` and the reason, so
nothing is silently lost; the cache does not keep failures, so the next run retries them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from engines import ChatRequest, Engine, Message, SamplingParams
from engines.base import canonical_json, sha256_hex
from scoring.schemas import ROLLOUTS, to_table
from scoring.verify import Verifier
from synthesis.problem import Problem

PROMPT_VERSION = "solve_boxed_v1"
SYSTEM_PROMPT = (
    "You are a careful math solver. Think step by step, briefly, then give only the final answer as \\boxed{answer}."
)


class RolloutConfig(BaseModel):
    """How the student is sampled. Everything but `k` goes into the sampling hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(4, ge=1, le=1024, description="rollouts per problem")
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int = 0
    verify_timeout_s: float = Field(5.0, gt=0, description="time limit of one answer check")


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
                "prompt_version": PROMPT_VERSION,
            }
        )
    )


def solve_request(problem: Problem, config: RolloutConfig) -> ChatRequest:
    sampling = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        n=config.k,
        seed=config.seed,
    )
    return ChatRequest((Message("system", SYSTEM_PROMPT), Message("user", problem.question)), sampling)


def run_rollouts(
    problems: Sequence[Problem],
    engine: Engine,
    *,
    student_id: str,
    config: RolloutConfig,
    verifier: Verifier,
    progress: bool = True,
) -> pa.Table:
    """Sample `config.k` answers per problem, verify each, and return the rows of the rollouts table."""
    completions = engine.generate([solve_request(p, config) for p in problems], progress=progress, desc="rollouts")
    s_hash = sampling_hash(config)
    pairs = [(p.answer, c.text) for p, group in zip(problems, completions, strict=True) for c in group if c.ok]
    verdicts = iter(verifier.check_completions(pairs))
    rows = []
    for problem, group in zip(problems, completions, strict=True):
        for completion in group:
            if completion.ok:
                verdict = next(verdicts)
                label, reason, extracted = verdict.label, verdict.reason, verdict.extracted
            else:
                label, reason, extracted = "error", f"engine: {completion.error}", None
            rows.append(
                {
                    "problem_id": problem.problem_id,
                    "student_id": student_id,
                    "student_revision": engine.model_revision,
                    "sampling_hash": s_hash,
                    "sample_index": completion.sample_index,
                    "completion": completion.text,
                    "extracted_answer": extracted,
                    "verdict": label,
                    "verdict_reason": reason,
                    "verifier_version": verifier.version,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "finish_reason": completion.finish_reason,
                    "latency_s": round(completion.latency_s, 4),
                }
            )
    return to_table(rows, ROLLOUTS)
