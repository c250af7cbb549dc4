"""math-verify on the full completion: a second candidate beside Gradus's own extraction (issue 25, item 1).

`check(gold, completion)` is exactly what math-verify alone would do — `math_verify.parse(completion)` with its
default extraction configs (LaTeX and plain expressions), then `math_verify.verify(parse("\\boxed{gold}"), …)` —
plus *where* its pick sits, so the caller can tell a final answer from a number mentioned mid-solution.

What math-verify picks: it tries its patterns by priority and, within a priority, the rightmost match first,
keeping the first one that parses. Priorities (math-verify 0.9): 0 "final answer is … I hope", 50 the last
`\\boxed{}` and "final answer … is …", 100 "answer:" followed within 100 characters by `= <expr>` or within 50
by an expression, 200 the same after the bare word "answer", 300 no anchor (the rightmost expression or math
block). So a box or the Minerva phrase is always the final commitment, but one "answer" word early on
("To answer this, note 3 + 4 = 7 …") outranks the real, unanchored final answer at the end.

Hence `Pick.is_final`: the pick counts as the completion's final answer when it came from a box or a "final answer
is" phrase (priority ≤ 50), or when no digit follows it in the completion and it is not an unevaluated arithmetic
expression (an echoed "Compute 12 * 7." is not an answer of 84). `locate` finds the pick with
math-verify's own regexes and its own `extract_match`, in its own order (a mirror of its
`extract_target_from_pred` loop that also keeps the match); it runs only when math-verify's verdict is
`correct`, and its parses hit math-verify's own LaTeX cache.

Untrusted text: call this only inside a `Verifier` worker (sandboxed, timer armed by the caller). Its size
limit is the base extractor's: math-verify sees the completion's last `MAX_SCAN_CHARS` characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

from scoring.grading.checkers import parsed_gold
from synthesis.answers import MAX_SCAN_CHARS, last_boxed
from synthesis.problem import Verdict

RULE = "math_verify_full"
COMMITTED_PRIORITY = 50  # math-verify's box / "final answer … is" priority
# "12 * 7", "3 \\times 4": an operation still to carry out ("3/4" is a fraction, a value, so `/` is not here)
_UNEVALUATED = re.compile(r"\d\s*(?:[-+*^×÷]|\\times|\\cdot|\\div)\s*[\d(\\]")
_ANCHORS = {0: "'final answer is … I hope'", 50: "\\boxed{} or 'final answer … is'", 100: "'answer:'", 200: "'answer'"}


@dataclass(frozen=True, slots=True)
class Pick:
    """Where math-verify's deciding match sits in the text it parsed."""

    priority: int
    start: int
    end: int
    is_final: bool
    value: str  # the parsed pick, as text

    @property
    def anchor(self) -> str:
        return _ANCHORS.get(self.priority, "no anchor (rightmost expression)")


def _default_targets() -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return [LatexExtractionConfig(), ExprExtractionConfig()]  # `math_verify.parse`'s defaults


def check(gold: str, completion: str) -> tuple[Verdict, Pick | None]:
    """math-verify alone on the full completion: its verdict (rule `math_verify_full`) and, when it says
    correct, where its pick sits. Without a time limit of its own: the caller's timer bounds it."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    text = completion[-MAX_SCAN_CHARS:]
    answer = parse(text, parsing_timeout=None)  # type: ignore[arg-type]
    if not answer:  # checked first: a completion with no answer never pays for parsing its gold
        return Verdict("unparseable", "math-verify found no answer in the full completion", None, RULE), None
    gold_parsed = parsed_gold(gold)
    if not gold_parsed:
        return Verdict("error", f"gold answer {gold[:80]!r} could not be parsed", None, RULE), None
    shown = str(answer[-1] if isinstance(answer[-1], str) else answer[0])[:200]
    if not verify(gold_parsed, answer, timeout_seconds=None):
        return Verdict("wrong", f"math-verify on the full completion picked {shown!r}, not gold", shown, RULE), None
    pick = locate(text)
    if pick is None:
        where = "its pick could not be located"
    else:
        where = f"picked by {pick.anchor} at char {pick.start}, " + (
            "the final answer"
            if pick.is_final
            else "not the final answer: more numbers follow, or it is an expression still to work out"
        )
    return Verdict("correct", f"math-verify on the full completion: {shown!r} equals gold ({where})", shown, RULE), pick


def locate(text: str) -> Pick | None:
    """The match math-verify's `parse(text)` decides on, found the way `parse` finds it."""
    from math_verify.parser import extract_match

    for priority, match, target in _candidates(text):
        value = extract_match(match, target)[0]
        if value is not None:
            after = text[match.end() :]
            # unanchored, the pick must be a final value: no digit after it, and not an expression still to be
            # worked out — "Compute 12 * 7." echoed back equals 84 to math-verify, but it answers nothing
            final = priority <= COMMITTED_PRIORITY or not (
                any(c.isdigit() for c in after) or _UNEVALUATED.search(text[match.start() : match.end()])
            )
            return Pick(priority, match.start(), match.end(), final, str(value)[:200])
    return None


@dataclass(frozen=True, slots=True)
class Reading:
    """What math-verify would read first in a completion, found with its own regexes and nothing parsed."""

    found: bool  # it has a candidate at all (without one, `parse` finds no answer)
    answer: str | None  # the candidate's text when it is one plain answer: one LaTeX answer or a plain number


def first_reading(completion: str) -> Reading:
    """The answer text of the match math-verify's `parse` tries first: the lowest priority that has a match,
    the rightmost match there. `\\boxed{X}` alone reads as X. When that candidate parses, it is math-verify's
    pick; the caller knows when it does (Gradus's own checkers judged the same text)."""
    text = completion[-MAX_SCAN_CHARS:]
    first = next(_candidates(text), None)
    if first is None:
        return Reading(False, None)
    groups = {name: value for name, value in first[1].groupdict().items() if value}
    if any("percent" in name for name in groups):
        return Reading(True, None)
    latex = [value for name, value in groups.items() if "_latex" in name]
    if latex:
        plain = len(latex) == 1 and "first_latex" in next(name for name in groups if "_latex" in name)
        return Reading(True, _unbox(latex[0].strip()) if plain else None)
    # A plain-text candidate counts only as a plain number: an expression ("2^10", "1/2") or a number with a
    # comma is parsed by math-verify's own expression rules, which may read it otherwise than Gradus does.
    number = groups.get("integer3") or groups.get("decimal3")
    if "integer2" in groups and groups["decimal2"].startswith("."):
        number = groups["integer2"] + groups["decimal2"]
    return Reading(True, number if number is not None and "expr" not in groups else None)


def _unbox(latex: str) -> str:
    """`\\boxed{X}` (one box, nothing around it) → X; anything else unchanged."""
    if latex.startswith("\\boxed{") and latex.count("\\boxed") == 1 and last_boxed(latex) == latex[7:-1].strip():
        return latex[7:-1].strip()
    return latex


def _candidates(text: str) -> Iterator[tuple[int, re.Match[str], object]]:
    """(priority, match, extraction target) in the order math-verify's `extract_target_from_pred` tries them
    with `parse`'s default targets: by priority, then rightmost end first, then leftmost start. Lazy: a
    priority's patterns run only when every lower priority had no match left to try."""
    from math_verify.parser import get_extraction_regexes

    patterns = sorted(
        ((pattern, target, priority) for group, target in get_extraction_regexes(_default_targets())
         for pattern, priority in group),
        key=lambda entry: entry[2],
    )  # fmt: skip
    for priority, same_priority in groupby(patterns, key=lambda entry: entry[2]):
        matches = sorted(
            ((match, target) for pattern, target, _ in same_priority for match in pattern.finditer(text)),
            key=lambda entry: (entry[0].end(), -entry[0].start()),
            reverse=True,
        )
        for match, target in matches:
            yield priority, match, target
