"""Multi-step integer arithmetic with a monotone difficulty knob (1 = easiest … 5 = hardest).

Each level adds operations or digits; measured on the embedded 1.5B student the pass rate falls from ~0.75 at
level 1 to ~0 by level 4-5 (see `../shared/embedded-models.md`). Values are computed from the generated
operands directly, never by evaluating the expression text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict


@dataclass(frozen=True, slots=True)
class ArithmeticConfig:
    source: str = "procedural"


def _num(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _level_expression(rng: random.Random, difficulty: int) -> tuple[str, int]:
    if difficulty == 1:
        a, b = _num(rng, 2), _num(rng, 2)
        return f"{a} + {b}", a + b
    if difficulty == 2:
        a, b, c = _num(rng, 2), _num(rng, 2), _num(rng, 2)
        return f"{a} * {b} - {c}", a * b - c
    if difficulty in (3, 4):
        digits = 2 if difficulty == 3 else 3
        a, b, c, d = (_num(rng, digits) for _ in range(4))
        return f"{a} * {b} - {c} * {d}", a * b - c * d
    a, b, c, d, e = (_num(rng, 3) for _ in range(5))
    return f"({a} * {b} - {c}) * {d} + {e}", (a * b - c) * d + e


@FAMILIES.register("arithmetic")
class ArithmeticFamily(Family):
    name = "arithmetic"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("arithmetic", "order_of_operations")

    def __init__(self, config: ArithmeticConfig | None = None) -> None:
        self.config = config or ArithmeticConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        expression, value = _level_expression(rng, difficulty)
        return self.make_problem(
            difficulty,
            question=f"Compute {expression}.",
            answer=str(value),
            solution=f"{expression} = {value}",
            metadata={"expression": expression},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)
