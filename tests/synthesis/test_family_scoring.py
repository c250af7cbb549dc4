"""Regression tables for the procedural families' scorers, hostile inputs, and each family's difficulty knob.

Rows are `(family, gold, pred, expected)`; `gold` is the canonical answer a family writes. Countdown scores against
the numbers and target in the problem's metadata, so its rows share one fixed problem.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from synthesis.families import FAMILIES, item_rng
from synthesis.families.countdown import ExpressionError, evaluate_expression
from synthesis.problem import Problem

NEW_FAMILIES = (
    "combinatorics",
    "countdown",
    "fractions",
    "knights_knaves",
    "linear_equations",
    "modular_arithmetic",
    "sequences",
    "word_problems",
)
KK_GOLD = "Alice: knight, Bob: knave, Carol: knight"
COUNTDOWN_GOLD = "50 * 3 + 7"
COUNTDOWN_METADATA = {"numbers": [3, 7, 25, 50], "target": 157}


def _problem(family: str, gold: str) -> Problem:
    return Problem.create(
        source="test",
        family=family,
        question=f"a {family} question",
        answer=gold,
        source_ref="test:0",
        metadata=COUNTDOWN_METADATA if family == "countdown" else None,
    )


def _label(family: str, gold: str, pred: str) -> str:
    return FAMILIES.get(family)().score(_problem(family, gold), pred).label


ROWS = [
    # linear_equations: one unknown
    ("linear_equations", "x=3", "3", "correct"),
    ("linear_equations", "x=3", "x = 3", "correct"),
    ("linear_equations", "x=3", "X=3.", "correct"),
    ("linear_equations", "x=3", "$x=3$", "correct"),
    ("linear_equations", "x=3", "(3)", "correct"),
    ("linear_equations", "x=3", "x=4", "wrong"),
    ("linear_equations", "x=3", "-3", "wrong"),
    ("linear_equations", "x=3", "y=3", "unparseable"),
    ("linear_equations", "x=3", "x=3, y=1", "unparseable"),
    ("linear_equations", "x=3", "x=3.5", "unparseable"),
    # linear_equations: systems
    ("linear_equations", "(x, y) = (2, -1)", "(2, -1)", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "(2,-1)", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "x=2, y=-1", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "y = -1 and x = 2", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "(y, x) = (-1, 2)", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "x=2; y=- 1", "correct"),
    ("linear_equations", "(x, y) = (2, -1)", "(-1, 2)", "wrong"),
    ("linear_equations", "(x, y) = (2, -1)", "x=2, y=1", "wrong"),
    ("linear_equations", "(x, y) = (2, -1)", "(2, -1, 0)", "unparseable"),
    ("linear_equations", "(x, y) = (2, -1)", "x=2", "unparseable"),
    ("linear_equations", "(x, y) = (2, -1)", "x=2, x=-1", "unparseable"),
    ("linear_equations", "(x, y, z) = (1, 0, -4)", "x=1, y=0, z=-4", "correct"),
    ("linear_equations", "(x, y, z) = (1, 0, -4)", "(1, 0, -4)", "correct"),
    ("linear_equations", "(x, y, z) = (1, 0, -4)", "(1, 0, 4)", "wrong"),
    # modular_arithmetic
    ("modular_arithmetic", "5", "5", "correct"),
    ("modular_arithmetic", "5", " +5. ", "correct"),
    ("modular_arithmetic", "5", "5.0", "correct"),
    ("modular_arithmetic", "5", "6", "wrong"),
    ("modular_arithmetic", "5", "-5", "wrong"),
    ("modular_arithmetic", "5", "5 mod 7", "unparseable"),
    ("modular_arithmetic", "5", "5.5", "unparseable"),
    # fractions
    ("fractions", "3/4", "3/4", "correct"),
    ("fractions", "3/4", "6/8", "correct"),
    ("fractions", "3/4", "3 / 4", "correct"),
    ("fractions", "3/4", "\\frac{3}{4}", "correct"),
    ("fractions", "3/4", "\\dfrac{3}{4}", "correct"),
    ("fractions", "3/4", "$(3/4)$", "correct"),
    ("fractions", "3/4", "0.75", "correct"),
    ("fractions", "3/4", "4/3", "wrong"),
    ("fractions", "3/4", "-3/4", "wrong"),
    ("fractions", "3/4", "0.7500001", "wrong"),
    ("fractions", "3/4", "3/0", "unparseable"),
    ("fractions", "3/4", "3/4/5", "unparseable"),
    ("fractions", "3/4", "7.5e-1", "unparseable"),
    ("fractions", "3/4", "three quarters", "unparseable"),
    ("fractions", "-3/4", "-3/4", "correct"),
    ("fractions", "-3/4", "\\frac{-3}{4}", "correct"),
    ("fractions", "-3/4", "-\\frac{3}{4}", "correct"),
    ("fractions", "-3/4", "-0.75", "correct"),
    ("fractions", "-3/4", "--3/4", "unparseable"),
    ("fractions", "2", "2", "correct"),
    ("fractions", "2", "4/2", "correct"),
    ("fractions", "2", "2.0", "correct"),
    # combinatorics, sequences, word_problems: integers
    ("combinatorics", "1820", "1820", "correct"),
    ("combinatorics", "1820", "1,820", "correct"),
    ("combinatorics", "1820", "1 820", "correct"),
    ("combinatorics", "1820", "1821", "wrong"),
    ("combinatorics", "1820", "C(16, 4)", "unparseable"),
    ("combinatorics", "1820", "1.82e3", "unparseable"),
    ("combinatorics", "1820", "18,20", "unparseable"),
    ("sequences", "-13", "-13", "correct"),
    ("sequences", "-13", "- 13", "correct"),
    ("sequences", "-13", "13", "wrong"),
    ("sequences", "-13", "-13, -15", "unparseable"),
    ("word_problems", "42", "$42", "correct"),
    ("word_problems", "42", "\\$42", "correct"),
    ("word_problems", "42", "41", "wrong"),
    ("word_problems", "42", "42 apples", "unparseable"),
    # knights_knaves
    ("knights_knaves", KK_GOLD, "alice: KNIGHT, bob: knave, carol: knight", "correct"),
    ("knights_knaves", KK_GOLD, "Carol: knight; Alice: knight; Bob: knave", "correct"),
    ("knights_knaves", KK_GOLD, "Alice is a knight, Bob is a knave, and Carol is a knight.", "correct"),
    ("knights_knaves", KK_GOLD, "Alice and Carol are knights, Bob is a knave", "correct"),
    ("knights_knaves", KK_GOLD, "Alice - knight | Bob - knave | Carol - knight", "correct"),
    ("knights_knaves", KK_GOLD, "Knight, Knave, Knight", "correct"),
    ("knights_knaves", KK_GOLD, "Alice: knave, Bob: knave, Carol: knight", "wrong"),
    ("knights_knaves", KK_GOLD, "Knave, Knave, Knight", "wrong"),
    ("knights_knaves", KK_GOLD, "Alice: knight, Bob: knave", "unparseable"),
    ("knights_knaves", KK_GOLD, "Alice: knight, Bob: knave, Carol: knight, Alice: knave", "unparseable"),
    ("knights_knaves", KK_GOLD, "Alice: knight, Bob: not a knight, Carol: knight", "unparseable"),
    ("knights_knaves", KK_GOLD, "Alice: knight, Bob: knave, Dave: knight", "unparseable"),
    ("knights_knaves", KK_GOLD, "Knight, Knave", "unparseable"),
    ("knights_knaves", KK_GOLD, "Alice: knight, Bob: knave, Carol: knight, knave", "unparseable"),
    # countdown: numbers 3, 7, 25, 50; target 157
    ("countdown", COUNTDOWN_GOLD, "50*3+7", "correct"),
    ("countdown", COUNTDOWN_GOLD, "(50 × 3) + 7", "correct"),
    ("countdown", COUNTDOWN_GOLD, "7 + 3 * 50", "correct"),
    ("countdown", COUNTDOWN_GOLD, "$50 \\times 3 + 7$", "correct"),
    ("countdown", COUNTDOWN_GOLD, "[50 * 3] + 7", "correct"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 + 7 = 157", "correct"),
    ("countdown", COUNTDOWN_GOLD, "(25 * 7 - 50 / 3 * 3) + 50 - 25 - 7 * 3 + 3", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 + 7 = 150", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 - 7", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 + 3 + 4", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 + 8 - 1", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "157", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "(25 + 50) / 3 * 7", "wrong"),
    ("countdown", COUNTDOWN_GOLD, "50 ** 3", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "50 ^ 3 + 7", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "-7 + 50 * 3", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "50 * (3 + 7", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "50 3 7", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "abs(7) + 50 * 3", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "1.5 * 100 + 7", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "50 * 3 + 7 =", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "1234567 - 1234410", "unparseable"),
    ("countdown", COUNTDOWN_GOLD, "(" * 45 + "7" + ")" * 45, "unparseable"),
]


@pytest.mark.parametrize("family,gold,pred,expected", ROWS)
def test_answer_forms(family: str, gold: str, pred: str, expected: str) -> None:
    assert _label(family, gold, pred) == expected


GOLDS = {
    "combinatorics": "1820",
    "countdown": COUNTDOWN_GOLD,
    "fractions": "3/4",
    "knights_knaves": KK_GOLD,
    "linear_equations": "(x, y) = (2, -1)",
    "modular_arithmetic": "5",
    "sequences": "-13",
    "word_problems": "42",
}
HOSTILE = [
    "__import__('os').system('x')",
    "9**9**9**9",
    "9^9^9^9",
    "1e999",
    "nan",
    "inf",
    "",
    "no idea",
    "\x00",
    "٤٢",
    "(" * 50_000,
    "9" * 100_000,
    "Knight, " * 20_000,
    "x=1, " * 20_000,
    "1/" * 50_000 + "1",
]


@pytest.mark.parametrize("pred", HOSTILE, ids=lambda s: f"{s[:12]!r}x{len(s)}")
@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_hostile_answers_are_unparseable_and_fast(family: str, pred: str) -> None:
    started = time.perf_counter()
    verdict = FAMILIES.get(family)().score(_problem(family, GOLDS[family]), pred)
    assert verdict.label == "unparseable", verdict
    assert verdict.reason
    assert len(verdict.reason) < 300
    assert time.perf_counter() - started < 0.5


def test_countdown_evaluator_is_exact_and_reports_division_by_zero() -> None:
    assert evaluate_expression("7 / 2 * 2") == (7, [7, 2, 2])
    assert evaluate_expression("5 / (2 - 2)") == (None, [5, 2, 2])
    with pytest.raises(ExpressionError, match="unexpected"):
        evaluate_expression("().__class__")
    countdown = FAMILIES.get("countdown")()
    problem = Problem.create(
        source="test",
        family="countdown",
        question="q",
        answer="5 + 2",
        source_ref="test:0",
        metadata={"numbers": [2, 2, 5], "target": 7},
    )
    assert countdown.score(problem, "5 / (2 - 2)").reason == "divides by zero"


def test_default_perturbed_answer_needs_an_integer_gold() -> None:
    family = FAMILIES.get("arithmetic")()
    assert family.perturbed_answer(_problem("arithmetic", "-3")) == "-2"
    with pytest.raises(NotImplementedError, match="override perturbed_answer"):
        family.perturbed_answer(_problem("arithmetic", "3/4"))


def _count(pattern: str) -> Callable[[Problem], int]:
    return lambda problem: len(re.findall(pattern, problem.question))


# How much work a question asks for, measured on its text: equations, terms, sentences, speakers, numbers.
WORK = {
    "combinatorics": lambda problem: len(problem.question),
    "countdown": _count(r"\d+(?=,|\s+each)"),
    "fractions": _count(r"\d+/\d+"),
    "knights_knaves": _count(r" says: "),
    "linear_equations": lambda problem: len(re.findall(r"\d+", problem.question)),
    "modular_arithmetic": lambda problem: len(re.sub(r"\D", "", problem.question)),
    "sequences": _count(r"-?\d+(?=, )"),
    "word_problems": _count(r"[.?] "),
}


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_knob_adds_work(name: str) -> None:
    family = FAMILIES.get(name)()
    work = {d: sum(WORK[name](p) for p in family.sample(11, [d], 20)) / 20 for d in family.difficulties}
    assert work[5] > work[1], work
    assert [work[d] for d in sorted(work)] == sorted(work.values()), work
    assert all(len(p.question) < 2000 for p in family.sample(12, [5], 5))


@pytest.mark.parametrize("name", NEW_FAMILIES)
def test_questions_state_the_answer_form_and_generation_is_fast(name: str) -> None:
    family = FAMILIES.get(name)()
    started = time.perf_counter()
    problems = [family.generate(item_rng(name, 5, i), d) for d in family.difficulties for i in range(20)]
    assert time.perf_counter() - started < 2.0
    for problem in problems:
        assert re.search(r"\b(Give the answer|Answer (with|in))\b", problem.question), problem.question
        assert problem.source_ref == f"{name}:level{problem.difficulty_knob}"
        assert family.score(problem, problem.answer).is_correct
