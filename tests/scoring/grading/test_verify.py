"""Verifier regression table: completions shaped like the embedded students' real outputs, and hostile ones.

Each row is (gold, completion, expected verdict). Cases come from Qwen2.5-Coder 0.5B/1.5B rollouts on the
arithmetic family and GSM8K (boxed answers, "the answer is", trailing numbers, thousands separators), from
MATH-style LaTeX answers, and from answers crafted to attack a checker.
"""

from __future__ import annotations

import time

import pytest

from scoring.grading.verify import Verifier, parse_answer, verify


@pytest.fixture(scope="module")
def verifier_timeout_s() -> float:
    return 3.0  # the `verifier` fixture's limit per answer (tests/conftest.py)


CASES = [
    # qwen-coder style: reasoning then \boxed{}
    ("1830", "First, 37 * 52 = 1924. Then 1924 - 94 = 1830.\n\n\\boxed{1830}", "correct"),
    ("1830", "37 * 52 = 1924, 1924 - 94 = 1840.\n\\[\n\\boxed{1840}\n\\]", "wrong"),
    ("18", "Janet sells 16 - 3 - 4 = 9 eggs for $2 each: 9 * 2 = $18.\nThe answer is $18.", "correct"),
    ("18", "She makes 9 * 2 = 18 dollars per day.", "correct"),  # last number
    ("1234", "So the total is \\boxed{1,234}.", "correct"),
    ("-217", "The result is \\boxed{-217}", "correct"),
    ("0.5", "\\boxed{\\frac{1}{2}}", "correct"),
    ("\\frac{1}{2}", "\\boxed{0.5}", "correct"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "so the point is \\boxed{(3, \\frac{\\pi}{2})}", "correct"),
    ("\\sqrt{2}", "\\boxed{\\sqrt 2}", "correct"),
    ("5", "\\boxed{\\text{no solution}}", "wrong"),  # a committed non-numeric answer is wrong
    ("7", "I cannot determine the answer without more information.", "unparseable"),
    ("7", "", "unparseable"),
    ("7", "\\boxed{7", "correct"),  # unclosed box: falls back to the last number
    ("12", "Final answer: 12.", "correct"),
    ("42", "```python\nprint(6*7)\n```\nThe answer is 41.", "wrong"),
    ("3", "__import__('os').system('echo pwned')", "unparseable"),
]

# Hand-written hard cases: equivalent forms that must match, near misses that must not.
HARD_CASES = [
    ("\\frac{3}{4}", "so \\boxed{\\dfrac{3}{4}}", "correct"),
    ("0.5", "\\boxed{\\frac12}", "correct"),
    ("1000", "The total is 1,000.", "correct"),
    ("1000", "\\boxed{1{,}000}", "correct"),
    ("3", "\\boxed{x=3}", "correct"),
    ("x=3", "\\boxed{3}", "correct"),
    ("[1,2)", "\\boxed{[1, 2)}", "correct"),
    ("[1,2)", "\\boxed{(1, 2)}", "wrong"),
    ("\\{1,2\\}", "\\boxed{\\{2, 1\\}}", "correct"),
    ("(1,2)", "\\boxed{(2,1)}", "wrong"),
    ("90^\\circ", "\\boxed{90}", "correct"),
    ("50\\%", "\\boxed{50}", "correct"),
    ("10", "\\boxed{10 \\text{ cm}}", "correct"),
    ("12", "She pays \\boxed{\\$12}.", "correct"),
    ("-5", "\\boxed{\u22125}", "correct"),
    ("-5", "The answer is \u22125.", "correct"),
    ("7", "Maybe \\boxed{3}? No: recheck, 3 + 4 = 7, so \\boxed{7}.", "correct"),
    ("3", "Maybe \\boxed{3}? No: recheck, 3 + 4 = 7, so \\boxed{7}.", "wrong"),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\frac{1}{\\sqrt{2}}}", "correct"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "correct"),
    ("C", "Comparing the options, the answer is (C).", "correct"),
    ("C", "Option B fits best, so B.", "wrong"),
    ("\\frac{14}{3}", "We get \\frac{14}{3}", "correct"),
    ("(-2,1)", "We get (-2,1).", "correct"),
    ("7", "@#%&" * 12_500, "unparseable"),
    ("7", "", "unparseable"),
]


@pytest.mark.parametrize(("gold", "completion", "expected"), CASES + HARD_CASES)
def test_regression_table(verifier: Verifier, gold: str, completion: str, expected: str) -> None:
    [verdict] = verifier.check_completions([(gold, completion)])
    assert verdict.label == expected, verdict.reason


def test_batch_keeps_order(verifier: Verifier) -> None:
    verdicts = verifier.check_completions([(g, c) for g, c, _ in CASES])
    assert [v.label for v in verdicts] == [e for _, _, e in CASES]


def test_hostile_answers_are_bounded_in_time(verifier: Verifier) -> None:
    hostile = [
        ("1", "\\boxed{9^{9^{9^{9^{9}}}}}"),
        ("1", "\\boxed{" + "\\frac{" * 200 + "1" + "}{2}" * 200 + "}"),
        ("1", "\\boxed{" + "(" * 5000 + "}"),
        ("1", "x" * 2_000_000),
    ]
    started = time.monotonic()
    verdicts = verifier.check_completions(hostile)
    assert time.monotonic() - started < 4 * verifier.timeout_s + 5
    assert all(v.label in ("wrong", "unparseable", "timeout", "error") for v in verdicts)


def test_parse_answer_methods() -> None:
    assert parse_answer("so \\boxed{\\frac{3}{4}} done").method == "boxed"  # type: ignore[union-attr]
    assert parse_answer("The answer is: 17").text == "17"  # type: ignore[union-attr]
    assert parse_answer("we get 3 then 4.5").text == "4.5"  # type: ignore[union-attr]
    assert parse_answer("no digits here") is None


def test_verify_pure_function() -> None:
    assert verify("2", "2.0").label == "correct"
    assert verify("2", "3").label == "wrong"


def test_family_and_reasoning_gym_problems_use_their_own_scorers(verifier: Verifier) -> None:
    from scoring.grading.verify import CheckItem
    from synthesis.families import FAMILIES
    from synthesis.reasoning_gym_source import rg_problems

    [countdown] = FAMILIES.get("countdown")().sample(0, [2], 1)
    [rg] = rg_problems("basic_arithmetic", size=1, seed=0)
    items = [
        CheckItem(countdown.answer, f"One way: \\boxed{{{countdown.answer}}}", countdown),
        CheckItem(countdown.answer, f"\\boxed{{{FAMILIES.get('countdown')().perturbed_answer(countdown)}}}", countdown),
        CheckItem(rg.answer, f"The answer is {rg.answer}.", rg),
        CheckItem(rg.answer, f"The answer is {rg.answer}1.", rg),
    ]
    verdicts = verifier.check(items)
    assert [v.label for v in verdicts] == ["correct", "wrong", "correct", "wrong"]
    assert [v.rule for v in verdicts] == ["family:countdown"] * 2 + ["family:rg:basic_arithmetic"] * 2
    audit = verifier.audit(items[:1])[0]
    assert [v.rule for v in audit][0] == "family:countdown" and "exact_match" in {v.rule for v in audit}
