"""Modular exponentiation: the remainder of a^b (or a sum of two such powers) on division by m.

The knob grows the base, the exponent and the modulus; level 5 adds a second power to the sum. Values are
computed with `pow(a, b, m)`, never from the question text.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict


@dataclass(frozen=True, slots=True)
class ModularArithmeticConfig:
    """`source` is written on every problem; the difficulty knob (1-5) sets the ranges in `_LEVELS`."""

    source: str = "procedural"


@dataclass(frozen=True, slots=True)
class _Level:
    max_base: int
    exponents: tuple[int, int]
    moduli: tuple[int, int]
    powers: int  # how many a^b terms are summed


_LEVELS = {
    1: _Level(max_base=15, exponents=(2, 4), moduli=(5, 20), powers=1),
    2: _Level(max_base=30, exponents=(5, 12), moduli=(7, 30), powers=1),
    3: _Level(max_base=100, exponents=(13, 60), moduli=(11, 100), powers=1),
    4: _Level(max_base=1000, exponents=(61, 999), moduli=(101, 1000), powers=1),
    5: _Level(max_base=1000, exponents=(100, 9999), moduli=(101, 2000), powers=2),
}


def _power(rng: random.Random, level: _Level, modulus: int) -> tuple[int, int]:
    while True:
        base = rng.randint(2, level.max_base)
        if base % modulus not in (0, 1):
            return base, rng.randint(*level.exponents)


@FAMILIES.register("modular_arithmetic")
class ModularArithmeticFamily(Family):
    name = "modular_arithmetic"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("modular_arithmetic", "exponents")

    def __init__(self, config: ModularArithmeticConfig | None = None) -> None:
        self.config = config or ModularArithmeticConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        level = _LEVELS[difficulty]
        modulus = rng.randint(*level.moduli)
        powers = [_power(rng, level, modulus) for _ in range(level.powers)]
        value = sum(pow(base, exponent, modulus) for base, exponent in powers) % modulus
        expression = " + ".join(f"{base}^{exponent}" for base, exponent in powers)
        shown = f"({expression})" if len(powers) > 1 else expression
        question = (
            f"Compute {shown} mod {modulus}, that is, the remainder when {shown} is divided by {modulus}. "
            f"Give the answer as a single integer from 0 to {modulus - 1}."
        )
        return self.make_problem(
            difficulty,
            question=question,
            answer=str(value),
            solution=f"{shown} ≡ {value} (mod {modulus})",
            metadata={"powers": [list(p) for p in powers], "modulus": modulus},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)

    def perturbed_answer(self, problem: Problem) -> str:
        modulus = int(json.loads(problem.metadata)["modulus"])
        return str((int(problem.answer) + 1) % modulus)
