"""Answers you can trust: a synthesized answer counts only when independent solutions agree with it.

Used by every synthesis method (ScaleQuest, GLAN, Socratic-Zero, restructuring, STAT-Syn). STAT-Syn keeps a
question when ≥ 2 of 3 teacher solutions agree (methods §7); we generalize to "at least `min_votes` of k, and a
strict majority". Equivalence is decided by the same time-limited verifier that grades rollouts, never `eval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engines import ChatRequest, Engine, Message, SamplingParams
from scoring.grading.rollouts import PROMPT_VERSION, PROMPTS
from scoring.grading.verify import Verifier, parse_answer
from synthesis.config import AnswerCheckConfig


@dataclass(frozen=True, slots=True)
class Agreement:
    """How k solutions voted on an answer. `answer` is the agreed answer (the reference, or the majority's)."""

    accepted: bool
    answer: str | None
    votes: int  # solutions that agree with `answer`
    k: int  # solutions that were checked (failed engine calls excluded)
    reason: str
    agreeing: tuple[int, ...] = field(default=())  # indexes of the agreeing solutions

    def detail(self) -> dict[str, object]:
        return {"votes": self.votes, "k": self.k, "answer": self.answer, "agreeing": list(self.agreeing)}


def reference_agreement(
    reference: str, solutions: Sequence[str], verifier: Verifier, *, min_votes: int = 2
) -> Agreement:
    """Accept `reference` when at least `min_votes` solutions, and more than half, reach the same answer."""
    if not solutions:
        return Agreement(False, reference, 0, 0, "no solutions to check the answer against")
    verdicts = verifier.check_completions([(reference, text) for text in solutions])
    agreeing = tuple(i for i, v in enumerate(verdicts) if v.is_correct)
    votes, k = len(agreeing), len(solutions)
    if votes >= min_votes and votes * 2 > k:
        return Agreement(True, reference, votes, k, f"{votes}/{k} solutions agree", agreeing)
    return Agreement(
        False, reference, votes, k, f"only {votes}/{k} solutions agree (need {min_votes}, > half)", agreeing
    )


def majority_agreement(solutions: Sequence[str], verifier: Verifier, *, min_votes: int = 2) -> Agreement:
    """With no reference answer: the answer most solutions reach (ties go to the earliest), accepted when it
    has at least `min_votes` votes and more than half."""
    extracted = [parse_answer(text) for text in solutions]
    candidates: list[str] = []
    for found in extracted:
        if found is not None and found.text not in candidates:
            candidates.append(found.text)
    if not candidates:
        return Agreement(False, None, 0, len(solutions), "no solution states a final answer")
    best: Agreement | None = None
    for candidate in candidates[:8]:  # bounded: k is small, and a ninth distinct answer cannot be a majority
        result = reference_agreement(candidate, solutions, verifier, min_votes=min_votes)
        if best is None or result.votes > best.votes:
            best = result
    assert best is not None
    if best.accepted:
        return best
    return Agreement(False, best.answer, best.votes, best.k, f"no majority: best answer has {best.votes}/{best.k}")


def solution_requests(questions: Sequence[str], config: AnswerCheckConfig, *, seed: int) -> list[ChatRequest]:
    """k independent solutions per question, with the grading prompt (`solve_boxed_v1`) so answers are boxed."""
    system, suffix = PROMPTS[PROMPT_VERSION]
    sampling = SamplingParams(temperature=config.temperature, max_tokens=config.max_tokens, n=config.k, seed=seed)
    return [ChatRequest((Message("system", system), Message("user", q + suffix)), sampling) for q in questions]


def check_answers(
    items: Sequence[tuple[str, str | None]],
    engine: Engine,
    verifier: Verifier,
    config: AnswerCheckConfig,
    *,
    seed: int,
    progress: bool = True,
) -> list[Agreement]:
    """For each `(question, reference answer or None)`: k solutions from `engine`, then `reference_agreement`
    (or `majority_agreement` when there is no reference). Failed engine calls are left out of k."""
    completions = engine.generate(
        solution_requests([q for q, _ in items], config, seed=seed), progress=progress, desc="checking answers"
    )
    results = []
    for (_, reference), group in zip(items, completions, strict=True):
        texts = [c.text for c in group if c.ok]
        if reference is None:
            results.append(majority_agreement(texts, verifier, min_votes=config.min_votes))
        else:
            results.append(reference_agreement(reference, texts, verifier, min_votes=config.min_votes))
    return results
