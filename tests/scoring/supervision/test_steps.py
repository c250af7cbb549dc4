"""The step checker `arith_steps_v1`: a regression table of step texts in the shapes models write (claims it must
find and judge, algebra and prose it must leave alone), bounds on hostile input, and the trace-level counts."""

from __future__ import annotations

from fractions import Fraction

import pytest

from scoring.supervision.arithmetic import ArithmeticTextError, evaluate, normalize_operators
from scoring.supervision.steps import MAX_STEPS, check_arithmetic_steps, split_steps, step_claims
from tests.conftest import digitless_marker, payloads

# (step text, the claims found as (normalized text, holds))
CLAIMS = [
    ("So 12 * 7 = 84.", [("12 * 7 = 84", True)]),
    ("12 * 7 = 85", [("12 * 7 = 85", False)]),
    ("Step 2. 12 - 5 = 7", [("12 - 5 = 7", True)]),
    ("$3 \\times 4 = 12$", [("3 * 4 = 12", True)]),
    ("48 ÷ 6 = 8 cookies each", [("48 / 6 = 8", True)]),
    ("\\frac{3}{4} \\times 8 = 6", [("((3)/(4)) * 8 = 6", True)]),
    ("1,200 + 300 = 1,500", [("1200 + 300 = 1500", True)]),
    ("(3 + 5) * 7 = 56", [("(3 + 5) * 7 = 56", True)]),
    ("5 - 8 = -3", [("5 - 8 = -3", True)]),
    ("2**10 = 1024", [("2^10 = 1024", True)]),
    ("0.1 + 0.2 = 0.3", [("0.1 + 0.2 = 0.3", True)]),  # exact: no floating-point error
    ("12 = 3 * 4", [("12 = 3 * 4", True)]),
    ("10 / 3 = 3.33", [("10 / 3 = 3.33", True)]),  # a decimal claim is the value rounded to its digits
    ("10 / 3 = 3.34", [("10 / 3 = 3.34", False)]),
    ("7 / 2 = 3", [("7 / 2 = 3", False)]),  # an integer claim must be exact
    ("10 / 3 \\approx 3", [("10 / 3 ≈ 3", True)]),
    ("2 + 3 = 5 + 1 = 6", [("2 + 3 = 5 + 1", False), ("5 + 1 = 6", True)]),  # chains are checked pair by pair
    ("is 3 * 4 = 12 apples", [("3 * 4 = 12", True)]),
    # shapes from tests/fixtures/embedded_completions.jsonl (Qwen2.5-Coder 0.5B): a list marker is not a minus,
    # inline-math delimiters are not part of the numbers, a quotient with a remainder is not a false claim
    ("   - 4 - 0 = 4", [("4 - 0 = 4", True)]),
    ("2) 5 * 3 = 15", [("5 * 3 = 15", True)]),
    ("a. 3 + 4 = 7", [("3 + 4 = 7", True)]),
    ("we add the ones together: \\(47 + 79 = 126\\).", [("47 + 79 = 126", True)]),
    ("We know that \\(12 \\div 5 = 2\\) with a remainder of 2.", []),
    ("17 R 2: 87 / 5 = 17 r2", []),
    (
        "   - (27 / 20) + (1/7) = (27 + 1) / (20 * 7) = 28 / 140",
        [("(27 / 20) + (1/7) = (27 + 1) / (20 * 7)", False), ("(27 + 1) / (20 * 7) = 28 / 140", True)],
    ),
    # not arithmetic claims: algebra, no operator, comparisons, units glued on, percent, words in between
    ("2x - 3 = 5", []),
    ("x^2 + 3 = 12", []),
    ("x = 5", []),
    ("3 = 5", []),
    ("2 * 3 == 6", []),
    ("3 * 4 = 12x", []),
    ("20% of 60 = 12", []),
    ("The total is 3 apples * 2 = 6", []),
    ("9^9^9^9 = 1", []),  # too large to evaluate: skipped, not a hang
    ("1 / 0 = 5", []),  # division by zero: no value, no claim
]


@pytest.mark.parametrize("step,expected", CLAIMS)
def test_claims_in_a_step(step: str, expected: list[tuple[str, bool]]) -> None:
    assert [(c.text, c.holds) for c in step_claims(step)] == expected


def test_values_are_exact_fractions() -> None:
    assert evaluate(normalize_operators("\\frac{1}{3} + \\frac{1}{6}")) == Fraction(1, 2)
    assert evaluate("2^-2") == Fraction(1, 4)
    assert evaluate("-(3 - 5) * 2") == 4


@pytest.mark.parametrize(
    "text",
    ["1" * 31 + " + 1", "2^65", "10^60^2", "(" * 41 + "1" + ")" * 41, "1 +" * 50 + " 1", "3 * ", "abc", "", "2 3"],
)
def test_hostile_or_malformed_expressions_fail_with_a_reason(text: str) -> None:
    with pytest.raises(ArithmeticTextError):
        evaluate(text)


def test_python_payloads_are_never_evaluated() -> None:
    marker = digitless_marker()
    for payload in payloads(marker):
        for text in (payload, f"{payload} = 3", f"3 * 4 = {payload}", f"({payload}) + 1 = 2"):
            check_arithmetic_steps(text)
            with pytest.raises(ArithmeticTextError):
                evaluate(normalize_operators(payload))
    assert not marker.exists()


def test_a_trace_counts_steps_checked_steps_and_erroneous_steps() -> None:
    trace = "First, 12 * 7 = 84.\nThen 84 + 6 = 91 and 91 - 1 = 90.\nSo the answer is \\boxed{90}."
    check = check_arithmetic_steps(trace)
    assert (check.n_steps, check.n_checked_steps, check.n_error_steps) == (3, 2, 1)
    assert (check.n_claims, check.n_wrong_claims) == (3, 1)
    assert check.step_error_rate == pytest.approx(1 / 3)
    assert check.first_error == "84 + 6 = 91" and check.method == "arith_steps_v1" and not check.truncated


def test_sentences_of_one_long_line_are_steps_and_decimals_do_not_split() -> None:
    steps, _ = split_steps("She pays 3.5 * 2 = 7 dollars. Then 7 + 3 = 10! Done")
    assert steps == ["She pays 3.5 * 2 = 7 dollars.", "Then 7 + 3 = 10!", "Done"]


def test_an_empty_trace_has_no_rate_and_a_huge_one_is_cut() -> None:
    assert check_arithmetic_steps("").step_error_rate is None
    huge = check_arithmetic_steps("1 + 1 = 2\n" * (MAX_STEPS + 10))
    assert huge.truncated and huge.n_steps == MAX_STEPS and huge.n_error_steps == 0
