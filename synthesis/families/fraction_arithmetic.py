"""Fraction arithmetic: sums, differences, products and quotients of fractions, answered as a reduced fraction.

Knob: 1 = two fractions added, small denominators; 2 = two fractions with + - ×; 3 = three fractions;
4 = four fractions with ÷ as well; 5 = five fractions with denominators up to 30. × and ÷ bind tighter than + and -;
the value is computed with `fractions.Fraction` from the generated terms, never from the question text.
Any answer equal in value is accepted: "3/4", "-3/4", "\\frac{3}{4}", "0.75", "6/8".
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from synthesis.families.base import FAMILIES, Family
from synthesis.problem import Problem, Verdict

MAX_ANSWER_CHARS = 200
_LATEX_FRACTION = re.compile(
    r"\\[dt]?frac\s*\{\s*(?P<num>[+-]?\d{1,40})\s*\}\s*\{\s*(?P<den>[+-]?\d{1,40})\s*\}", re.ASCII
)
_SLASH_FRACTION = re.compile(r"(?P<num>\d{1,40})\s*/\s*(?P<den>\d{1,40})", re.ASCII)
_DECIMAL = re.compile(r"\d{1,40}(?:\.\d{0,40})?|\.\d{1,40}", re.ASCII)
_SYMBOLS = {"+": "+", "-": "-", "*": "×", "/": "÷"}


@dataclass(frozen=True, slots=True)
class FractionsConfig:
    """`source` is written on every problem; the difficulty knob (1-5) sets the terms, operators and denominators."""

    source: str = "procedural"


@dataclass(frozen=True, slots=True)
class _Level:
    terms: int
    max_denominator: int
    operators: str


_LEVELS = {
    1: _Level(terms=2, max_denominator=9, operators="+"),
    2: _Level(terms=2, max_denominator=12, operators="+-*"),
    3: _Level(terms=3, max_denominator=12, operators="+-*"),
    4: _Level(terms=4, max_denominator=20, operators="+-*/"),
    5: _Level(terms=5, max_denominator=30, operators="+-*/"),
}


def format_fraction(value: Fraction) -> str:
    """The canonical answer text: "a/b" in lowest terms, or "a" when the value is whole."""
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def parse_fraction(answer: str) -> Fraction | None:
    """A rational value from "3/4", "-3/4", "\\frac{3}{4}", "-\\dfrac{3}{4}", "0.75" or "2"; None otherwise."""
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    text = answer.strip().strip("$").strip().removesuffix(".").strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    sign = -1 if text.startswith("-") else 1
    text = text[1:].strip() if text[:1] in "+-" else text
    for pattern in (_LATEX_FRACTION, _SLASH_FRACTION):
        match = pattern.fullmatch(text)
        if match:
            denominator = int(match.group("den"))
            return None if denominator == 0 else sign * Fraction(int(match.group("num")), denominator)
    if _DECIMAL.fullmatch(text):
        return sign * Fraction(text)
    return None


def _operand(rng: random.Random, max_denominator: int) -> Fraction:
    """A fraction n/d already in lowest terms and not whole, so the question shows exactly its value."""
    denominator = rng.randint(2, max_denominator)
    numerator = rng.choice([n for n in range(1, max_denominator + 1) if math.gcd(n, denominator) == 1])
    return Fraction(numerator, denominator)


def _evaluate(operands: list[Fraction], operators: list[str]) -> Fraction:
    """The value with × ÷ before + -, computed from the generated terms."""
    total, product = Fraction(0), operands[0]
    sign = 1
    for operator, operand in zip(operators, operands[1:], strict=True):
        if operator in "*/":
            product = product * operand if operator == "*" else product / operand
        else:
            total += sign * product
            sign, product = (1 if operator == "+" else -1), operand
    return total + sign * product


def _shown(value: Fraction) -> str:
    return f"({value.numerator}/{value.denominator})"


@FAMILIES.register("fractions")
class FractionsFamily(Family):
    name = "fractions"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("fraction_arithmetic",)

    def __init__(self, config: FractionsConfig | None = None) -> None:
        self.config = config or FractionsConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        level = _LEVELS[difficulty]
        operands = [_operand(rng, level.max_denominator) for _ in range(level.terms)]
        operators = [rng.choice(level.operators) for _ in range(level.terms - 1)]
        value = _evaluate(operands, operators)
        expression = _shown(operands[0]) + "".join(
            f" {_SYMBOLS[op]} {_shown(term)}" for op, term in zip(operators, operands[1:], strict=True)
        )
        mixed = set(operators) & set("*/") and set(operators) & set("+-")
        precedence = " Multiplication (×) and division (÷) come before addition and subtraction." if mixed else ""
        question = (
            f"Compute {expression}.{precedence} "
            "Give the answer as a reduced fraction a/b, or as an integer if the result is whole."
        )
        return self.make_problem(
            difficulty,
            question=question,
            answer=format_fraction(value),
            solution=f"{expression} = {format_fraction(value)}",
            metadata={"expression": expression},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        value = parse_fraction(answer)
        if value is None:
            return Verdict("unparseable", f"not a fraction, integer or decimal: {answer[:80]!r}", None)
        gold = parse_fraction(problem.answer)
        if value == gold:
            return Verdict("correct", "equal rational value", format_fraction(value))
        return Verdict("wrong", f"{format_fraction(value)} != {problem.answer}", format_fraction(value))

    def perturbed_answer(self, problem: Problem) -> str:
        gold = parse_fraction(problem.answer)
        if gold is None:
            raise ValueError(f"gold answer {problem.answer!r} is not a fraction")
        return format_fraction(gold + 1)
