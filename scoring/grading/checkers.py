"""Gradus's own checkers: pull the final answer out of a completion and compare it with the gold answer.

Two pure functions, `parse_answer(text, config)` and `verify(gold, pred, config)`, plus the strict
`exact_match` second opinion the audit keeps. They have no time limit of their own: model text reaches them
only through `scoring.grading.verify.Verifier`, whose sandboxed workers arm a timer around each call.
Conventions follow `../shared/methods.md` §15 (Qwen2.5-Math extraction order, Math-Verify equivalence);
`scoring.grading.answer_forms` documents the answer forms added in issue 25.

`verify` tries, in order: normalized string equality (rule "exact"), a multiple-choice letter match
("choice"), an exact numeric comparison for plain numbers and simple fractions ("numeric"), a rounded decimal
for a fraction gold ("numeric_approx"), and math-verify's symbolic equivalence on the two answers
("math_verify").
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache

from scoring.grading import answer_forms
from scoring.grading.verify_config import VerifyConfig
from synthesis.answers import ExtractedAnswer, extract_final_answer
from synthesis.problem import Verdict

_CHOICE_GOLD = re.compile(r"^\(?([A-Ea-e])\)?$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_SIMPLE_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*(\d+)$|^([+-]?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_SPACES = re.compile(r"\s+")
GOLD_CACHE_SIZE = 4096  # gold answers a worker keeps parsed: rollouts check K samples of one problem in a row


def parsed_gold(gold: str) -> list:
    """math-verify's parse of a gold answer (as a box's content), cached per process: the same gold is checked
    against every sample of its problem, by `math_verify_answers` and the full-text candidate alike. Empty when
    math-verify cannot parse it. A parse cut short by the worker's timer raises and is not cached."""
    return list(_parse_gold(gold))


@lru_cache(maxsize=GOLD_CACHE_SIZE)
def _parse_gold(gold: str) -> tuple:
    from math_verify import parse

    return tuple(parse(f"\\boxed{{{gold}}}", parsing_timeout=None))  # type: ignore[arg-type]


def is_choice_gold(gold: str) -> bool:
    """Whether the gold answer is a multiple-choice letter (A–E, optionally in parentheses)."""
    return _CHOICE_GOLD.match(gold.strip()) is not None


def parse_answer(text: str, config: VerifyConfig | None = None, *, choices: bool = False) -> ExtractedAnswer | None:
    """The final answer a completion commits to (`\\boxed{}`, "the answer is", a trailing math block or
    relation, last number or, for multiple choice, last letter), or None when it commits to none."""
    del config  # extraction has no knobs yet; the parameter keeps the two functions' shapes aligned
    return answer_forms.refine(text, extract_final_answer(text, choices=choices))


def verify(gold: str, pred: str, config: VerifyConfig | None = None) -> Verdict:
    """Compare two final answers. Pure and without a time limit: call it through `Verifier` for untrusted input."""
    del config
    gold, pred, read_as = answer_forms.ascii_relations(gold), answer_forms.ascii_relations(pred), ""
    comma = answer_forms.decimal_comma(pred)
    if comma is not None and "," not in gold and _as_fraction(gold) is not None:
        pred, read_as = comma, f" (decimal comma: read as {comma})"
    verdict = _compare(gold, pred)
    return Verdict(verdict.label, verdict.reason + read_as, verdict.extracted, verdict.rule) if read_as else verdict


def exact_match(gold: str, pred: str) -> Verdict:
    """A strict second opinion for the audit: normalized text equality only."""
    same = _normalize(gold) == _normalize(pred)
    return Verdict("correct" if same else "wrong", "normalized text equality", pred, "exact_match")


def math_verify_answers(gold: str, pred: str) -> Verdict:
    """math-verify's symbolic equivalence of two extracted answers (each parsed as the content of a box)."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    gold_parsed = parsed_gold(gold)
    if not gold_parsed:
        return Verdict("error", f"gold answer {gold[:80]!r} could not be parsed", pred, "math_verify")
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not pred_parsed:
        return Verdict("unparseable", f"answer {pred[:80]!r} is not a mathematical expression", pred, "math_verify")
    if mv_verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return Verdict("correct", f"equivalent to gold {gold[:80]!r}", pred, "math_verify")
    return Verdict("wrong", f"{pred[:80]!r} is not equivalent to gold {gold[:80]!r}", pred, "math_verify")


def _normalize(text: str) -> str:
    text = _SPACES.sub("", text.replace("\\!", "").replace("\\,", "").replace("\\left", "").replace("\\right", ""))
    return text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip("$").rstrip(".").lower()


def _as_fraction(text: str) -> Fraction | None:
    text = text.replace(",", "").replace("\\$", "").replace("$", "").strip()
    if _PLAIN_NUMBER.match(text):
        return Fraction(text)
    match = _SIMPLE_FRACTION.match(text)
    if match is None:
        return None
    if match.group(1) is not None:
        num, den = int(match.group(1)), int(match.group(2))
    else:
        num, den = int(match.group(4)) * (-1 if match.group(3) == "-" else 1), int(match.group(5))
    return Fraction(num, den) if den else None


def _compare(gold: str, pred: str) -> Verdict:
    if _normalize(gold) == _normalize(pred):
        return Verdict("correct", "same text after normalization", pred, "exact")
    choice = _CHOICE_GOLD.match(gold.strip())
    if choice:
        picked = _CHOICE_GOLD.match(pred.strip())
        if picked is None:
            return Verdict("unparseable", f"expected a choice letter A–E, got {pred[:80]!r}", pred, "choice")
        same = picked.group(1).upper() == choice.group(1).upper()
        return Verdict(
            "correct" if same else "wrong",
            f"choice {picked.group(1).upper()} vs gold {choice.group(1).upper()}",
            pred,
            "choice",
        )
    gold_num, pred_num = _as_fraction(gold), _as_fraction(pred)
    if gold_num is not None and pred_num is not None and (gold_num == pred_num or "." not in gold + pred):
        label = "correct" if gold_num == pred_num else "wrong"
        return Verdict(label, f"{pred[:40]!r} {'=' if label == 'correct' else '!='} {gold[:40]!r}", pred, "numeric")
    if gold_num is not None and gold_num.denominator != 1 and "." not in gold and _SIMPLE_FRACTION.match(gold.strip()):
        approx = answer_forms.approximation(gold_num, pred)
        if approx is not None:
            return Verdict("correct" if approx[0] else "wrong", approx[1], pred, "numeric_approx")
    return math_verify_answers(gold, pred)
