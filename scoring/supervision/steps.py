"""A step-wise error estimate of a reasoning trace (methods §14.1: step-wise error rate = erroneous steps / steps).

`arith_steps_v1` splits a trace into steps (lines, and sentences inside a long line), finds every arithmetic claim
`<expression> = <value>` in a step (also `≈`, and chains `a = b = c` pair by pair), and checks it exactly with
`scoring.supervision.arithmetic` (Fraction arithmetic, never `eval`). A step is erroneous when one of its claims is
false; a step without any claim counts as not erroneous (this checker sees arithmetic only), so the table keeps
`n_checked_steps` beside the rate. A claimed decimal is accepted when it is the exact value rounded to the digits
it shows (`10 / 3 = 3.33`); an integer claim must be exact.

A claim is only taken when both sides are whole expressions: `2x - 3 = 5` (the left side continues into a
variable), `x^2 + 3 = 12` and `3 = 5` (no operator on either side) are not claims, so algebra is not mistaken
for arithmetic. The checker's name is versioned: bump it whenever a count could change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from scoring.supervision.arithmetic import ArithmeticTextError, evaluate, has_binary_operator, normalize_operators
from synthesis.registry import Registry

MAX_TRACE_CHARS = 32_000  # a longer trace is checked on its first MAX_TRACE_CHARS characters (`truncated`)
MAX_STEPS = 512
MAX_CLAIMS_PER_STEP = 32
CLAIM_CHARS = 160


@dataclass(frozen=True, slots=True)
class Claim:
    """One checked equality: its text, both exact values and whether it holds."""

    text: str
    left: Fraction
    right: Fraction
    holds: bool


@dataclass(frozen=True, slots=True)
class StepCheck:
    """A trace's step-wise error estimate by one checker (`method`)."""

    method: str
    n_steps: int
    n_checked_steps: int  # steps with at least one claim the checker could check
    n_error_steps: int
    n_claims: int
    n_wrong_claims: int
    first_error: str | None  # the first false claim (or erroneous step), for a person to audit
    truncated: bool
    failure: str | None = None  # why a model-judged check failed (then there is no rate)

    @property
    def step_error_rate(self) -> float | None:
        """Erroneous steps / steps (None for a trace without steps or a failed check)."""
        return self.n_error_steps / self.n_steps if self.n_steps and self.failure is None else None


StepChecker = Callable[[str], StepCheck]
# Step checkers by name; `<name>_<version>` is the `step_method` of every trace row.
STEP_CHECKERS: Registry[StepChecker] = Registry("step checker")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_HAS_WORD = re.compile(r"\w")
# `=` on its own (not `==`, `<=`, `>=`, `!=`, `:=`, `=>`), `≈` and `\approx`.
_RELATION = re.compile(r"(?<![<>!=:])(=|≈)(?![=>])")
# A period ending a sentence ("= 84." or "Step 2. 12 - 5") is not a decimal point: it stops an expression.
_FULL_STOP = re.compile(r"\.(?=\s|$)")
_EXPRESSION_CHARS = frozenset("0123456789.+-*/^() \t")
_SEPARATORS = frozenset(":;,|[")  # punctuation that may sit right before an expression
# A Markdown or outline list marker opening a step ("- 8 - 4 = 4", "2) 5 * 3 = 15", "a. ..."): not a minus sign.
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[A-Za-z][.)]|\(\w\))\s+")
_REMAINDER = re.compile(r"\s*(?:with\s+(?:a\s+)?)?(?:remainder|rem\b|r\s*\d)", re.IGNORECASE)
_DECIMALS = re.compile(r"^\s*[-+]?\d*\.(\d+)\s*$")


def split_steps(text: str) -> tuple[list[str], bool]:
    """The steps of a trace (non-empty lines; a line is split into sentences) and whether the trace or its steps
    were cut at `MAX_TRACE_CHARS` / `MAX_STEPS`."""
    truncated = len(text) > MAX_TRACE_CHARS
    steps: list[str] = []
    for line in text[:MAX_TRACE_CHARS].splitlines():
        for sentence in _SENTENCE_END.split(line.strip()):
            if _HAS_WORD.search(sentence):
                steps.append(sentence)
    if len(steps) > MAX_STEPS:
        steps, truncated = steps[:MAX_STEPS], True
    return steps, truncated


def _suffix_start(segment: str) -> int:
    """Where the longest run of expression characters at the end of `segment` begins."""
    start = len(segment)
    while start > 0 and segment[start - 1] in _EXPRESSION_CHARS:
        start -= 1
    return start


def _prefix_end(segment: str) -> int:
    """Where the longest run of expression characters at the start of `segment` ends."""
    end = 0
    while end < len(segment) and segment[end] in _EXPRESSION_CHARS:
        end += 1
    return end


def _left_side(segment: str) -> str | None:
    """The expression ending at a relation sign, or None when it is cut out of something larger (`2x - 3`)."""
    start = _suffix_start(segment)
    raw, before = segment[start:], segment[:start]
    expression = raw.strip()
    if not expression:
        return None
    if before and not raw[0].isspace() and before[-1] not in _SEPARATORS:
        return None  # glued to a word, a variable or a symbol: "x2 + 3", "5% * 80"
    if expression[0] in "*/^":
        return None
    previous = before.rstrip()[-1:]
    if expression[0] in "+-" and previous and previous not in _SEPARATORS:
        return None  # "2x - 3": the minus is binary, its left operand is not arithmetic
    return expression


def _right_side(segment: str) -> str | None:
    """The expression starting after a relation sign, or None when it runs into a word (`= 12x`) or is a quotient
    with a remainder (`12 / 5 = 2 with a remainder of 2`)."""
    end = _prefix_end(segment)
    expression = segment[:end].strip()
    if not expression:
        return None
    after = segment[end:]
    if after and not segment[end - 1].isspace() and (after[0].isalnum() or after[0] in "\\_%"):
        return None
    if _REMAINDER.match(after):
        return None
    return expression


def _decimals(expression: str) -> int | None:
    """Digits after the point of a plain number (0 for an integer); None for an expression."""
    if has_binary_operator(expression):
        return None
    match = _DECIMALS.match(expression)
    return len(match.group(1)) if match else 0


def _holds(left: str, right: str, lv: Fraction, rv: Fraction, relation: str) -> bool | None:
    """Whether the claim holds; None when it is not a claim this checker judges."""
    if lv == rv:
        return True
    shown = _decimals(right) if _decimals(left) is None else _decimals(left)
    if shown is None:  # an expression on both sides: only exact equality holds (≈ between two is not judged)
        return None if relation == "≈" else False
    if shown == 0 and relation == "=":
        return False  # an integer claim must be exact
    return abs(lv - rv) <= Fraction(1, 2 * 10**shown)


def step_claims(step: str) -> list[Claim]:
    """The arithmetic claims in one step, each checked exactly."""
    text = _FULL_STOP.sub("|", normalize_operators(_LIST_MARKER.sub("", step).replace("\\approx", "≈")))
    parts = _RELATION.split(text)
    claims: list[Claim] = []
    for index in range(0, len(parts) - 2, 2):
        if len(claims) >= MAX_CLAIMS_PER_STEP:
            break
        left, relation, right = _left_side(parts[index]), parts[index + 1], _right_side(parts[index + 2])
        if left is None or right is None or not (has_binary_operator(left) or has_binary_operator(right)):
            continue
        try:
            lv, rv = evaluate(left), evaluate(right)
        except ArithmeticTextError:
            continue
        holds = _holds(left, right, lv, rv, relation)
        if holds is not None:
            claims.append(Claim(f"{left} {relation} {right}"[:CLAIM_CHARS], lv, rv, holds))
    return claims


@STEP_CHECKERS.register(
    "arith_steps", description="lines/sentences as steps; every `expr = value` checked exactly (Fraction, no eval)"
)
def check_arithmetic_steps(text: str) -> StepCheck:
    """The step-wise error estimate of `text` from its arithmetic claims (`arith_steps_v1`)."""
    steps, truncated = split_steps(text)
    checked = errors = n_claims = wrong = 0
    first_error: str | None = None
    for step in steps:
        claims = step_claims(step)
        n_claims += len(claims)
        false = [c for c in claims if not c.holds]
        wrong += len(false)
        checked += bool(claims)
        errors += bool(false)
        if false and first_error is None:
            first_error = false[0].text
    method = STEP_CHECKERS.method("arith_steps")
    return StepCheck(method, len(steps), checked, errors, n_claims, wrong, first_error, truncated)
