"""Next term of an integer sequence: arithmetic, geometric, quadratic, interleaved or recursive.

Knob: 1 = arithmetic; 2 = geometric (or arithmetic with a negative step and larger numbers); 3 = quadratic
(constant second difference); 4 = two arithmetic sequences interleaved, or Fibonacci-like; 5 = a second-order
linear recurrence a(n) = p·a(n-1) + q·a(n-2), or a cubic. Each level shows more terms. Terms are computed from the
generated rule; the question never states the rule.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict

Rule = Callable[[random.Random], tuple[str, list[int]]]


@dataclass(frozen=True, slots=True)
class SequencesConfig:
    """`source` is written on every problem; the difficulty knob (1-5) picks the rules in `_LEVELS`."""

    source: str = "procedural"


def _nonzero(rng: random.Random, low: int, high: int) -> int:
    return rng.choice([v for v in range(low, high + 1) if v != 0])


def _arithmetic(rng: random.Random) -> tuple[str, list[int]]:
    start, step = rng.randint(1, 60), rng.randint(2, 12)
    return f"arithmetic, step {step}", [start + step * i for i in range(6)]


def _arithmetic_negative(rng: random.Random) -> tuple[str, list[int]]:
    start, step = rng.randint(50, 200), -rng.randint(7, 25)
    return f"arithmetic, step {step}", [start + step * i for i in range(6)]


def _geometric(rng: random.Random) -> tuple[str, list[int]]:
    start, ratio = rng.randint(1, 20), rng.choice([2, 3, 4, 5, -2, -3])
    return f"geometric, ratio {ratio}", [start * ratio**i for i in range(6)]


def _quadratic(rng: random.Random) -> tuple[str, list[int]]:
    a, b, c = _nonzero(rng, -3, 3), rng.randint(-9, 9), rng.randint(-20, 20)
    return f"quadratic, a(n) = {a}n^2 + ({b})n + ({c})", [a * n * n + b * n + c for n in range(1, 8)]


def _interleaved(rng: random.Random) -> tuple[str, list[int]]:
    starts = (rng.randint(1, 40), rng.randint(1, 40))
    steps = (_nonzero(rng, -9, 9), _nonzero(rng, -9, 9))
    terms = [starts[i % 2] + steps[i % 2] * (i // 2) for i in range(9)]
    return f"two interleaved arithmetic sequences, steps {steps[0]} and {steps[1]}", terms


def _fibonacci_like(rng: random.Random) -> tuple[str, list[int]]:
    terms = [rng.randint(1, 25), rng.randint(1, 25)]
    while len(terms) < 9:
        terms.append(terms[-1] + terms[-2])
    return "each term is the sum of the previous two", terms


def _linear_recurrence(rng: random.Random) -> tuple[str, list[int]]:
    p, q = rng.choice([2, 3, -2]), rng.choice([1, -1, 2, -3])
    terms = [rng.randint(1, 9), rng.randint(1, 9)]
    while len(terms) < 9:
        terms.append(p * terms[-1] + q * terms[-2])
    return f"a(n) = {p}*a(n-1) + ({q})*a(n-2)", terms


def _cubic(rng: random.Random) -> tuple[str, list[int]]:
    a, b, c = _nonzero(rng, -2, 2), rng.randint(-5, 5), rng.randint(-20, 20)
    return f"cubic, a(n) = {a}n^3 + ({b})n + ({c})", [a * n**3 + b * n + c for n in range(1, 10)]


_LEVELS: dict[int, tuple[Rule, ...]] = {
    1: (_arithmetic,),
    2: (_geometric, _arithmetic_negative),
    3: (_quadratic,),
    4: (_interleaved, _fibonacci_like),
    5: (_linear_recurrence, _cubic),
}


@FAMILIES.register("sequences")
class SequencesFamily(Family):
    name = "sequences"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("sequences", "pattern_recognition")

    def __init__(self, config: SequencesConfig | None = None) -> None:
        self.config = config or SequencesConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        rule = rng.choice(_LEVELS[difficulty])
        description, terms = rule(rng)
        shown, value = terms[:-1], terms[-1]
        question = (
            f"What is the next term of the sequence {', '.join(str(t) for t in shown)}, ...? "
            "The sequence follows a single simple rule. Give the answer as a single integer."
        )
        return self.make_problem(
            difficulty,
            question=question,
            answer=str(value),
            solution=f"Rule: {description}; next term {value}",
            metadata={"rule": rule.__name__.lstrip("_"), "shown": shown},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)
