"""Linear equations with integer solutions: one unknown at the low knobs, then 2×2 and 3×3 systems.

Knob: 1 = `ax + b = c`; 2 = unknown on both sides; 3 = 2×2 system; 4 = 3×3 system with small coefficients;
5 = 3×3 system with larger coefficients and solutions. The solution is drawn first and the right-hand sides are
computed from it, so the gold answer is exact; systems are kept only when their determinant is non-zero.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family
from synthesis.problem import Problem, Verdict

MAX_ANSWER_CHARS = 200
_NAMES = ("x", "y", "z")
_NUMBER = r"[+-]?\s*\d{1,12}"
_ASSIGNMENT = re.compile(rf"(?P<name>[a-z])\s*=\s*(?P<value>{_NUMBER})", re.ASCII)
_VALUE = re.compile(_NUMBER, re.ASCII)
_PREFIX = re.compile(r"\(\s*(?P<names>[a-z](?:\s*,\s*[a-z]){0,5})\s*\)\s*=\s*", re.ASCII)
_SEPARATOR = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class LinearEquationsConfig:
    """`source` is written on every problem; the difficulty knob (1-5) sets unknowns and coefficient sizes."""

    source: str = "procedural"


@dataclass(frozen=True, slots=True)
class _Level:
    unknowns: int
    max_coefficient: int
    max_solution: int


_LEVELS = {
    1: _Level(unknowns=1, max_coefficient=9, max_solution=10),
    2: _Level(unknowns=1, max_coefficient=15, max_solution=20),
    3: _Level(unknowns=2, max_coefficient=6, max_solution=10),
    4: _Level(unknowns=3, max_coefficient=5, max_solution=9),
    5: _Level(unknowns=3, max_coefficient=12, max_solution=20),
}


def _nonzero(rng: random.Random, bound: int) -> int:
    return rng.choice([v for v in range(-bound, bound + 1) if v != 0])


def _determinant(rows: list[list[int]]) -> int:
    if len(rows) == 1:
        return rows[0][0]
    return sum(
        (-1) ** col * rows[0][col] * _determinant([row[:col] + row[col + 1 :] for row in rows[1:]])
        for col in range(len(rows))
    )


def _term(coefficient: int, name: str, first: bool) -> str:
    magnitude = "" if abs(coefficient) == 1 else str(abs(coefficient))
    if first:
        return f"{'-' if coefficient < 0 else ''}{magnitude}{name}"
    return f" {'-' if coefficient < 0 else '+'} {magnitude}{name}"


def _side(coefficients: list[int], names: tuple[str, ...], constant: int = 0) -> str:
    """`2x - y + 3z` (plus an optional constant), with unit coefficients written as `x` / `-x`."""
    text = "".join(_term(c, name, pos == 0) for pos, (c, name) in enumerate(zip(coefficients, names, strict=True)))
    if constant:
        text += f" {'-' if constant < 0 else '+'} {abs(constant)}"
    return text


def _unknowns(gold: str) -> int:
    """1 for "x=3"; the number of values for "(x, y) = (2, -1)"."""
    return gold.count(",") // 2 + 1 if gold.startswith("(") else 1


def _format_solution(values: tuple[int, ...]) -> str:
    if len(values) == 1:
        return f"x={values[0]}"
    return f"({', '.join(_NAMES[: len(values)])}) = ({', '.join(str(v) for v in values)})"


def _single(rng: random.Random, difficulty: int, level: _Level) -> tuple[str, tuple[int, ...]]:
    x = rng.randint(-level.max_solution, level.max_solution)
    a = rng.randint(2, level.max_coefficient)
    b = _nonzero(rng, 2 * level.max_solution)
    if difficulty == 1:
        return f"{_side([a], ('x',), b)} = {a * x + b}", (x,)
    c = rng.choice([v for v in range(-level.max_coefficient, level.max_coefficient + 1) if v not in (0, a)])
    d = a * x + b - c * x
    return f"{_side([a], ('x',), b)} = {_side([c], ('x',), d)}", (x,)


def _system(rng: random.Random, level: _Level) -> tuple[str, tuple[int, ...]]:
    n = level.unknowns
    names = _NAMES[:n]
    solution = tuple(rng.randint(-level.max_solution, level.max_solution) for _ in range(n))
    while True:
        rows = [[_nonzero(rng, level.max_coefficient) for _ in range(n)] for _ in range(n)]
        if _determinant(rows) != 0:
            break
    lines = [f"{_side(row, names)} = {sum(c * v for c, v in zip(row, solution, strict=True))}" for row in rows]
    return "\n".join(lines), solution


def parse_solution(answer: str, unknowns: int) -> tuple[int, ...] | str:
    """Values in x, y, z order from "x=3", "3", "(2, -1)", "x=2, y=-1" or "(x, y) = (2, -1)"; else a reason."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} chars"
    text = answer.strip().strip("$").strip().removesuffix(".").lower()
    order = list(_NAMES[:unknowns])
    prefix = _PREFIX.match(text)
    if prefix:
        order = _SEPARATOR.split(prefix.group("names"))
        text = text[prefix.end() :]
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    parts = _SEPARATOR.split(text.strip())
    if len(parts) != unknowns or sorted(order) != sorted(_NAMES[:unknowns]):
        return f"expected values for {', '.join(_NAMES[:unknowns])}"
    assigned = [_ASSIGNMENT.fullmatch(part) for part in parts]
    if all(assigned):
        by_name = {m.group("name"): int(m.group("value").replace(" ", "")) for m in assigned if m}
        if sorted(by_name) != sorted(_NAMES[:unknowns]):
            return f"expected one value each for {', '.join(_NAMES[:unknowns])}"
        return tuple(by_name[name] for name in _NAMES[:unknowns])
    if all(_VALUE.fullmatch(part) for part in parts):
        by_name = {name: int(part.replace(" ", "")) for name, part in zip(order, parts, strict=True)}
        return tuple(by_name[name] for name in _NAMES[:unknowns])
    return "not integer values in a form like 'x=3' or '(x, y) = (2, -1)'"


@FAMILIES.register("linear_equations")
class LinearEquationsFamily(Family):
    name = "linear_equations"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("linear_equations", "algebraic_manipulation")

    def __init__(self, config: LinearEquationsConfig | None = None) -> None:
        self.config = config or LinearEquationsConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        level = _LEVELS[difficulty]
        if level.unknowns == 1:
            equations, solution = _single(rng, difficulty, level)
            question = f"Solve for x: {equations}. Give the answer in the form x=<integer>."
        else:
            equations, solution = _system(rng, level)
            names = ", ".join(_NAMES[: level.unknowns])
            question = (
                f"Solve the system of equations:\n{equations}\n"
                f"Give the answer in the form ({names}) = ({', '.join('<integer>' for _ in solution)})."
            )
        answer = _format_solution(solution)
        return self.make_problem(
            difficulty,
            question=question,
            answer=answer,
            solution=answer,
            metadata={"equations": equations.split("\n"), "solution": list(solution)},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        gold = parse_solution(problem.answer, _unknowns(problem.answer))
        if isinstance(gold, str):
            return Verdict("error", f"gold answer {problem.answer!r}: {gold}", None)
        parsed = parse_solution(answer, len(gold))
        if isinstance(parsed, str):
            return Verdict("unparseable", f"{parsed}: {answer[:80]!r}", None)
        extracted = _format_solution(parsed)
        if parsed == gold:
            return Verdict("correct", "all values match", extracted)
        return Verdict("wrong", f"{extracted} != {problem.answer}", extracted)

    def perturbed_answer(self, problem: Problem) -> str:
        gold = parse_solution(problem.answer, _unknowns(problem.answer))
        if isinstance(gold, str):
            raise ValueError(f"gold answer {problem.answer!r} does not parse: {gold}")
        return _format_solution((gold[0] + 1, *gold[1:]))
