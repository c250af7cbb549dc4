"""Model answers built to run code, sent with a problem attached through every path that scores answers: each
Gradus family's own scorer, every reasoning-gym dataset Gradus allows, the general checker (no problem), the
synthesis answer check (where a model's answer also plays the gold answer) and the trainer's reward function.
A marker file must never appear, and every verdict must be `wrong` or `unparseable` — never `error`, `correct`
or a crash. The verifier workers are also locked down (tests/scoring/grading/test_verifier_sandbox.py); the scorer-level
proof without that lock-down is tests/synthesis/test_rg_scoring.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainerState

from scoring.grading.agreement import majority_agreement, reference_agreement
from scoring.grading.verify import CheckItem, Verifier
from scoring.training.rewards import VerifiedReward
from synthesis.families import FAMILIES
from synthesis.problem import Problem
from synthesis.reasoning_gym_source import rg_problems
from synthesis.rg_scoring import NATIVE
from tests.conftest import digitless_marker, payloads

ALLOWED_LABELS = {"wrong", "unparseable"}


def completions(marker: Path) -> list[str]:
    """Each payload as a model would state it: boxed, after "the answer is", and bare."""
    texts = []
    for payload in payloads(marker):
        texts += [f"Let me compute.\n\\boxed{{{payload}}}", f"The answer is {payload}", payload]
    return texts


def family_problems() -> list[Problem]:
    problems = []
    for name in sorted(FAMILIES.names()):
        family = FAMILIES.get(name)()
        problems += family.sample(0, [min(family.difficulties)], 1)
    return problems


def allowed_rg_problems() -> list[Problem]:
    problems = []
    for name in sorted(NATIVE):
        try:
            problems += rg_problems(name, size=1, seed=0)
        except Exception:  # validity-only datasets have no gold answer and never reach the verifier
            continue
    return problems


@pytest.fixture(scope="module")
def verifier_timeout_s() -> float:
    return 3.0  # the `verifier` fixture's limit per answer (tests/conftest.py)


def _check(verifier: Verifier, problems: list[Problem | None], gold: list[str], marker: Path) -> None:
    items = [CheckItem(g, text, p) for p, g in zip(problems, gold, strict=True) for text in completions(marker)]
    verdicts = verifier.check(items)
    assert not marker.exists(), "a model answer was executed"
    assert len(verdicts) == len(items)
    bad = [
        (i.problem.family if i.problem else None, i.completion[:50], v) for i, v in zip(items, verdicts, strict=True)
    ]
    bad = [entry for entry in bad if entry[2].label not in ALLOWED_LABELS]
    assert bad == []


def test_every_family_scorer(verifier: Verifier) -> None:
    problems = family_problems()
    assert len({p.family for p in problems}) == len(FAMILIES.names()) >= 8
    _check(verifier, problems, [p.answer for p in problems], digitless_marker())


def test_every_allowed_reasoning_gym_scorer(verifier: Verifier) -> None:
    problems = allowed_rg_problems()
    assert len({p.family for p in problems}) >= 80
    _check(verifier, problems, [p.answer for p in problems], digitless_marker())


@pytest.mark.parametrize("gold", ["7", "\\frac{3}{4}", "x^2 + 1", "(1, 2]", "B", "yes"])
def test_the_general_checker(verifier: Verifier, gold: str) -> None:
    _check(verifier, [None], [gold], digitless_marker())


def test_the_synthesis_answer_check(verifier: Verifier) -> None:
    """Majority agreement compares model answers with each other, so a payload is also checked as a gold."""
    marker = digitless_marker()
    texts = completions(marker)
    majority = majority_agreement(texts, verifier)
    reference = reference_agreement("12", texts, verifier)
    assert not marker.exists()
    assert not reference.accepted and reference.votes == 0
    assert majority.votes <= 3  # a payload agrees at most with its own three phrasings, never with the others


def test_the_trainer_reward_function(verifier: Verifier) -> None:
    marker = digitless_marker()
    problems = family_problems()[:2] + allowed_rg_problems()[:2]
    texts = completions(marker)
    rows = [(p, text) for p in problems for text in texts]
    reward = VerifiedReward(verifier, {p.problem_id: p for p in problems}, steps_per_epoch=1)
    state = TrainerState()
    rewards = reward(
        prompts=[p.question for p, _ in rows],
        completions=[[{"role": "assistant", "content": text}] for _, text in rows],
        completion_ids=[[1, 2, 3] for _ in rows],
        problem_id=[p.problem_id for p, _ in rows],
        position=[index for index, _ in enumerate(rows)],
        answer=[p.answer for p, _ in rows],
        trainer_state=state,
    )
    assert not marker.exists()
    assert rewards == [0.0] * len(rows)
    assert {row["verdict"] for row in reward.rollouts} <= ALLOWED_LABELS
    # the same function rewards a right answer, so the zeros above are the verdicts, not a dead reward
    right = reward(
        prompts=[problems[0].question],
        completions=[[{"role": "assistant", "content": f"\\boxed{{{problems[0].answer}}}"}]],
        completion_ids=[[1]],
        problem_id=[problems[0].problem_id],
        position=[0],
        answer=[problems[0].answer],
        trainer_state=state,
    )
    assert right == [1.0]
