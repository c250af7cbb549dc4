"""Countdown: reach a target from given numbers with + - * / and parentheses, each number used at most once.

Knob: (numbers given, numbers the reference solution combines) = (3, 2), (4, 3), (5, 3), (6, 4), (6, 5); from
level 3 on, targets reachable with a single operation on two numbers are rejected. The reference expression is
built while the target is computed, with every intermediate a positive integer.

Candidate expressions are untrusted and never `eval`ed: a small recursive-descent parser accepts only integers,
+ - * /, parentheses and spaces, with bounded length and token count, and evaluates exactly with `Fraction`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from synthesis.families.base import FAMILIES, Family
from synthesis.problem import Problem, Verdict

MAX_EXPRESSION_CHARS = 200
MAX_TOKENS = 80
_TOKEN = re.compile(r"\s*(?:(\d{1,6})|([-+*/()]))", re.ASCII)
_ALIASES = {"×": "*", "·": "*", "÷": "/", "−": "-", "\\times": "*", "\\cdot": "*", "\\div": "/", "[": "(", "]": ")"}
_CLAIMED = re.compile(r"\s*=\s*(\d{1,12})\s*$", re.ASCII)
_LARGE = (25, 50, 75, 100)
_LEVELS = {1: (3, 2), 2: (4, 3), 3: (5, 3), 4: (6, 4), 5: (6, 5)}


@dataclass(frozen=True, slots=True)
class CountdownConfig:
    """`source` is written on every problem; the difficulty knob (1-5) sets how many numbers are given and used."""

    source: str = "procedural"


class ExpressionError(ValueError):
    """The candidate is not an arithmetic expression in the accepted form."""


class _Parser:
    """expr := term (('+'|'-') term)*; term := atom (('*'|'/') atom)*; atom := INT | '(' expr ')'."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos, self.numbers = tokens, 0, []

    def parse(self) -> Fraction | None:
        value = self._expr()
        if self.pos != len(self.tokens):
            raise ExpressionError(f"unexpected {self.tokens[self.pos]!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _expr(self) -> Fraction | None:
        value = self._term()
        while self._peek() in ("+", "-"):
            operator = self.tokens[self.pos]
            self.pos += 1
            right = self._term()
            value = None if value is None or right is None else value + right if operator == "+" else value - right
        return value

    def _term(self) -> Fraction | None:
        value = self._atom()
        while self._peek() in ("*", "/"):
            operator = self.tokens[self.pos]
            self.pos += 1
            right = self._atom()
            if value is None or right is None or (operator == "/" and right == 0):
                value = None  # division by zero: keep parsing so the form is still checked
            else:
                value = value * right if operator == "*" else value / right
        return value

    def _atom(self) -> Fraction | None:
        token = self._peek()
        if token is None:
            raise ExpressionError("expression ends early")
        self.pos += 1
        if token == "(":
            value = self._expr()
            if self._peek() != ")":
                raise ExpressionError("unbalanced parentheses")
            self.pos += 1
            return value
        if token.isdigit():
            self.numbers.append(int(token))
            return Fraction(int(token))
        raise ExpressionError(f"unexpected {token!r}")


def split_claim(text: str) -> tuple[str, int | None]:
    """`"(3 + 5) * 7 = 56"` -> `("(3 + 5) * 7", 56)`; an expression without `= N` has no claimed value."""
    text = text.strip().strip("$").removesuffix(".").strip()
    claim = _CLAIMED.search(text)
    return (text[: claim.start()], int(claim.group(1))) if claim else (text, None)


def evaluate_expression(text: str) -> tuple[Fraction | None, list[int]]:
    """The exact value (None after a division by zero) and the integers used; raises `ExpressionError`."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"longer than {MAX_EXPRESSION_CHARS} chars")
    for alias, symbol in _ALIASES.items():
        text = text.replace(alias, symbol)
    text, tokens, pos = text.strip(), [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    if not tokens or len(tokens) > MAX_TOKENS:
        raise ExpressionError(f"expected 1-{MAX_TOKENS} tokens")
    parser = _Parser(tokens)
    return parser.parse(), parser.numbers


def _combine(rng: random.Random, numbers: list[int]) -> tuple[int, str]:
    """Combine all `numbers` in a random order and tree shape, keeping intermediates positive integers."""
    items = [(n, str(n)) for n in numbers]
    while len(items) > 1:
        (a, left), (b, right) = items.pop(rng.randrange(len(items))), items.pop(rng.randrange(len(items)))
        a, b, left, right = (a, b, left, right) if a >= b else (b, a, right, left)
        choices = [("+", a + b), ("*", a * b)] if b > 1 else [("+", a + b)]
        if a > b:
            choices.append(("-", a - b))
        if b > 1 and a % b == 0:
            choices.append(("/", a // b))
        operator, value = rng.choice(choices)
        items.append((value, f"({left} {operator} {right})"))
    value, expression = items[0]
    return value, expression[1:-1]  # the outermost operation needs no parentheses


def _one_step_values(numbers: list[int]) -> set[int]:
    values = set(numbers)
    for i, a in enumerate(numbers):
        for b in numbers[i + 1 :]:
            values |= {a + b, a * b, abs(a - b)}
            if min(a, b) and max(a, b) % min(a, b) == 0:
                values.add(max(a, b) // min(a, b))
    return values


@FAMILIES.register("countdown")
class CountdownFamily(Family):
    name = "countdown"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("expression_search", "arithmetic")

    def __init__(self, config: CountdownConfig | None = None) -> None:
        self.config = config or CountdownConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        given, used = _LEVELS[difficulty]
        while True:
            large = rng.randint(0, 2) if difficulty >= 4 else 0
            numbers = sorted(rng.sample(_LARGE, large) + [rng.randint(1, 10) for _ in range(given - large)])
            target, expression = _combine(rng, rng.sample(numbers, used))
            blocked = _one_step_values(numbers) if difficulty >= 3 else set(numbers)
            if target not in blocked and 10 <= target <= 999:
                break
        question = (
            f"Using the numbers {', '.join(str(n) for n in numbers)}, each at most once, and the operations "
            f"+, -, *, / with parentheses, write an expression equal to {target}. Not every number has to be used. "
            "Answer with the expression only, for example (a + b) * c."
        )
        return self.make_problem(
            difficulty,
            question=question,
            answer=expression,
            solution=f"{expression} = {target}",
            metadata={"numbers": numbers, "target": target},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        try:
            numbers, target = _numbers_and_target(problem)
        except ValueError as error:
            return Verdict("error", str(error), None)
        if len(answer) > MAX_EXPRESSION_CHARS:
            return Verdict("unparseable", f"longer than {MAX_EXPRESSION_CHARS} chars: {answer[:80]!r}", None)
        expression, claimed = split_claim(answer)
        try:
            value, used = evaluate_expression(expression)
        except ExpressionError as error:
            return Verdict("unparseable", f"not an arithmetic expression ({error}): {answer[:80]!r}", None)
        extracted = expression.strip()
        if claimed is not None and claimed != target:
            return Verdict("wrong", f"claims the result is {claimed}, not the target {target}", extracted)
        extra = Counter(used) - Counter(numbers)
        if extra:
            return Verdict("wrong", f"uses numbers not available: {sorted(extra.elements())}", extracted)
        if value is None:
            return Verdict("wrong", "divides by zero", extracted)
        if value != target:
            return Verdict("wrong", f"equals {value}, not {target}", extracted)
        return Verdict("correct", f"uses only the given numbers and equals {target}", extracted)

    def perturbed_answer(self, problem: Problem) -> str:
        numbers, target = _numbers_and_target(problem)
        total = " + ".join(str(n) for n in numbers)
        return total if sum(numbers) != target else str(numbers[0])


def _numbers_and_target(problem: Problem) -> tuple[list[int], int]:
    """The numbers and target this family wrote into the problem's metadata."""
    try:
        metadata = json.loads(problem.metadata)
        return [int(n) for n in metadata["numbers"]], int(metadata["target"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"problem {problem.problem_id} has no countdown numbers/target metadata: {error}") from None
