"""Elementary arithmetic for very small students: one operation on one- or two-digit numbers (knob 1 … 6).

The `arithmetic` family starts at two-digit addition, which a 135M-parameter student almost never gets right
(issue 23: SmolLM2-135M-Instruct, 4 samples at temperature 0.8, "give only the final answer": one-digit addition
22/48, one-digit multiplication 12/48, a teen plus a digit 9/48, two-digit addition 4/48). This family spans that
range so a small student's pass rates spread over 0–1, which a curriculum needs to have anything to order:

1. a + b, both 1–4          4. a teen plus a digit (10–19 + 1–9)
2. a + b, both 1–9          5. two-digit addition
3. a × b, both 2–9          6. two-digit subtraction with a positive result

Values come from the drawn operands, never from the question text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict


@dataclass(frozen=True, slots=True)
class ElementaryConfig:
    source: str = "procedural"


def _operands(rng: random.Random, difficulty: int) -> tuple[int, str, int]:
    """(left, operator, right) at a knob setting."""
    if difficulty == 1:
        return rng.randint(1, 4), "+", rng.randint(1, 4)
    if difficulty == 2:
        return rng.randint(1, 9), "+", rng.randint(1, 9)
    if difficulty == 3:
        return rng.randint(2, 9), "*", rng.randint(2, 9)
    if difficulty == 4:
        return rng.randint(10, 19), "+", rng.randint(1, 9)
    if difficulty == 5:
        return rng.randint(10, 99), "+", rng.randint(10, 99)
    high = rng.randint(20, 99)
    return high, "-", rng.randint(10, high - 1)


_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@FAMILIES.register("elementary")
class ElementaryFamily(Family):
    name = "elementary"
    difficulties = (1, 2, 3, 4, 5, 6)
    skills = ("arithmetic",)  # the same skill as `arithmetic`, on smaller numbers: one vocabulary entry for both

    def __init__(self, config: ElementaryConfig | None = None) -> None:
        self.config = config or ElementaryConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        left, operator, right = _operands(rng, difficulty)
        expression, value = f"{left} {operator} {right}", _APPLY[operator](left, right)
        return self.make_problem(
            difficulty,
            question=f"Compute {expression}.",
            answer=str(value),
            solution=f"{expression} = {value}",
            metadata={"expression": expression},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)
