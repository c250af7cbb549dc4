"""Which checker decides one answer: the decision rule a `Verifier` worker applies to each (gold, completion).

Gradus's own checkers first (`Verdict.rule`): a procedural family's own exact scorer when the problem comes
from a registered family or reasoning-gym ("family:<name>"), else `scoring.grading.checkers.verify` on the
extracted answer ("exact", "choice", "numeric", "numeric_approx", "math_verify"). No answer extracted is
`unparseable` (rule "extract").

Then the full-text candidate, math-verify alone on the whole completion (rule "math_verify_full",
`scoring.grading.full_text`), so the verifier is never worse than math-verify alone where Gradus's extraction
loses. It runs only where it can change the verdict, which keeps verification cheap (issue 24 asks for
>= 1,500 rollouts/s absorbed end-to-end; `bench/verify_throughput.py` measures the cost). It can only turn a
verdict into `correct`, so it runs when all of these hold:

1. Gradus's own checkers did not say `correct`;
2. no family scorer owns the problem (a countdown answer equal in value to the gold expression is not a
   solution, so a family's exact verdict is never overridden);
3. the gold answer is a form math-verify can judge: not a multiple-choice letter (its default extraction reads
   no letters), and not a gold its own parser already rejected (Gradus's "math_verify" rule said `error`);
4. Gradus's checker did not time out (the same text would stall math-verify again);
5. math-verify would read an answer, and not the one Gradus already judged. Its first candidate (its own
   regexes, its own order, nothing parsed: `full_text.first_reading`) is compared with the answer Gradus
   extracted. No candidate: `parse` finds nothing, so it cannot say correct. The same text, when Gradus said
   `wrong` (so the text parses, and math-verify's pick is that candidate): Gradus's checkers have judged that
   very answer, with math-verify's own equivalence behind their exact shortcuts, so the candidate could only
   repeat or loosen it (a truncated 0.666666 for 2/3). Only a single LaTeX answer (`\\boxed{X}` read as X) or
   a plain number counts as the same text; an expression or a number with a comma in plain text is parsed by
   math-verify's own expression rules, so there it runs.

Conditions 1–4 need no look at the text; condition 5 scans it with math-verify's regexes, under the
candidate's timer (`tests/scoring/grading/test_verify_answer_forms.py` checks, on every recorded and
hand-written completion, that the candidate would not have changed a verdict condition 5 skips).

Where it runs, the verdict becomes `correct` (rule "math_verify_full", with both checkers' reasons) if
math-verify on the full completion finds the gold answer *as the final answer*: its pick came from a
`\\boxed{}` or a "final answer is" phrase, or no digit follows the pick in the completion. The proviso exists
because math-verify ranks any "answer" word above an unanchored last expression, so "To answer this, note
3 + 4 = 7 … the total is 12" would otherwise grade 7 correct (`../shared/methods.md` §15.1: the answer is
the one the completion commits to last, the last box, else the answer phrase, else the last number).
Otherwise Gradus's verdict stands. Either way the candidate's opinion is kept as its own rule in the audit
(`verdict_audit`), so disagreements can be inspected; rows where it did not run have no "math_verify_full"
entry. It runs under its own timer of the same length, in the same sandboxed worker, on the same
size-limited text.

The audit (`audit=True`) adds the other checkers' opinions after the deciding one: `verify` beside a family
scorer, and `exact_match` (normalized text equality) always.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from scoring.grading import full_text, sandbox
from scoring.grading.checkers import exact_match, is_choice_gold, math_verify_answers, parse_answer, verify
from synthesis.answers import MAX_ANSWER_CHARS, ExtractedAnswer
from synthesis.families import FAMILIES
from synthesis.problem import Problem, Verdict

RG_FAMILY_PREFIX = "rg:"
_OWN_RULES = ("timer", "")  # the rules of a timeout / a failure of Gradus's own checkers
_FULL_TEXT_RULES = (full_text.RULE, full_text.RULE)


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One answer to check: the gold answer, the full completion, and the problem when it is known."""

    gold: str
    completion: str
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """What a worker needs to decide an answer: the time limit per checker, whether family scorers decide their
    own problems, whether to keep every checker's opinion (the audit), and whether the full-text candidate runs
    (off only for the baseline in `bench/verify_throughput.py`)."""

    timeout_s: float
    use_family: bool = True
    audit: bool = False
    full_text: bool = True


class _AnswerTimeout(BaseException):
    """Raised by the worker's timer; a BaseException so library code's `except Exception` cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _AnswerTimeout


def warm_up() -> None:
    """Import and exercise math-verify once per worker, so the first answer's timer does not pay for it; then
    lock the worker down (no file writes, no new processes: `scoring.grading.sandbox`) before it sees model text."""
    math_verify_answers("\\sqrt{2}", "2^{1/2}")
    full_text.check("1", "So the answer is \\boxed{1}.")  # compiles math-verify's extraction regexes
    sandbox.lock_down()


def check_chunk(items: list[CheckItem], settings: CheckSettings) -> list[list[Verdict]]:
    """Every item's verdicts, the deciding one first. Runs in a worker process (its main thread), so a
    per-checker interval timer is safe here."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        return [check_one(item, settings) for item in items]
    finally:
        signal.signal(signal.SIGALRM, previous)


def check_one(item: CheckItem, settings: CheckSettings) -> list[Verdict]:
    """Gradus's own checkers, then math-verify on the full completion where it can change the verdict."""
    choices = is_choice_gold(item.gold)
    extracted = parse_answer(item.completion, choices=choices)
    if extracted is None:
        verdicts = [Verdict("unparseable", "no \\boxed{}, 'the answer is' or number found", None, "extract")]
    elif len(extracted.text) >= MAX_ANSWER_CHARS:
        verdicts = [Verdict("unparseable", f"answer longer than {MAX_ANSWER_CHARS} chars", None, "extract")]
    else:
        _prepare(item, settings.use_family)
        own = _timed(lambda: _own_checkers(item, extracted, settings), settings.timeout_s, extracted.text, _OWN_RULES)
        verdicts = [_tag(v, extracted) for v in own]
    if not (settings.full_text and full_text_may_change(item, verdicts[0], settings.use_family)):
        return verdicts
    opinion = _timed(lambda: [_full_text_opinion(item, verdicts[0])], settings.timeout_s, None, _FULL_TEXT_RULES)[0]
    return verdicts if opinion is None else _combine(verdicts, opinion)


def full_text_may_change(item: CheckItem, deciding: Verdict, use_family: bool) -> bool:
    """Whether math-verify on the full completion could turn Gradus's deciding verdict into `correct`, judged
    from the verdict and the problem alone (conditions 1–4 in the module docstring)."""
    if deciding.label in ("correct", "timeout") or family_decides(item, use_family) or is_choice_gold(item.gold):
        return False
    gold_rejected = deciding.rule == "math_verify" and deciding.label == "error"
    return not gold_rejected


def _full_text_opinion(item: CheckItem, deciding: Verdict) -> tuple[Verdict, full_text.Pick | None] | None:
    """math-verify's verdict on the full completion, or None when it would read nothing, or read exactly the
    answer Gradus's own checkers already judged `wrong` (condition 5 in the module docstring)."""
    reading = full_text.first_reading(item.completion)
    if not reading.found:
        return None
    if deciding.label == "wrong" and deciding.extracted is not None and reading.answer == deciding.extracted.strip():
        return None
    return full_text.check(item.gold, item.completion)


def family_decides(item: CheckItem, use_family: bool) -> bool:
    """Whether a family's exact scorer owns this problem (whatever it said, even when no answer was extracted)."""
    if not use_family or item.problem is None:
        return False
    return is_rg_item(item) or item.problem.family in FAMILIES


def _own_checkers(item: CheckItem, extracted: ExtractedAnswer, settings: CheckSettings) -> list[Verdict]:
    """Gradus's deciding verdict first, then (for the audit) its other checkers' verdicts."""
    family_score = _family_scorer(item, settings.use_family)
    verdicts = []
    if family_score is not None and item.problem is not None:
        family_verdict = family_score(item.problem, extracted.text)
        verdicts.append(
            Verdict(family_verdict.label, family_verdict.reason, extracted.text, f"family:{item.problem.family}")
        )
    if settings.audit or not verdicts:
        verdicts.append(verify(item.gold, extracted.text))
    if settings.audit:
        verdicts.append(exact_match(item.gold, extracted.text))
    return verdicts


def _combine(verdicts: list[Verdict], opinion: Verdict | tuple[Verdict, full_text.Pick | None]) -> list[Verdict]:
    """The full-text verdict decides when it finds gold as the final answer; either way it stays in the audit."""
    if isinstance(opinion, Verdict):  # the full-text checker timed out or failed
        return [*verdicts, opinion]
    full, pick = opinion
    deciding = verdicts[0]
    if full.label == "correct" and pick is not None and pick.is_final:
        reason = f"{full.reason}; Gradus's own checkers said {deciding.label} ({deciding.rule}: {deciding.reason})"
        return [Verdict("correct", reason[:1000], full.extracted, full_text.RULE), *verdicts]
    return [*verdicts, full]


def _family_scorer(item: CheckItem, use_family: bool) -> Callable[[Problem, str], Verdict] | None:
    """The problem's own exact scorer: a registered Gradus family, or reasoning-gym's for `rg:` problems."""
    if not use_family or item.problem is None:
        return None
    if is_rg_item(item):
        from synthesis.reasoning_gym_source import rg_score  # imported only in workers that meet such problems

        return rg_score
    if item.problem.family not in FAMILIES:
        return None
    return FAMILIES.get(item.problem.family)().score


def is_rg_item(item: CheckItem) -> bool:
    """Whether the item's problem comes from reasoning-gym (its scorer needs time to prepare)."""
    return item.problem is not None and item.problem.family.startswith(RG_FAMILY_PREFIX)


def _prepare(item: CheckItem, use_family: bool) -> None:
    """What depends only on the stored problem — importing reasoning-gym, rebuilding its dataset — runs before
    the answer's timer starts: it is the same for every answer to the problem, and the chunk's hard limit bounds
    it. Its failures surface again, as the verdict's reason, when the answer is scored."""
    if use_family and is_rg_item(item) and item.problem is not None:
        from synthesis.reasoning_gym_source import rg_prepare

        rg_prepare(item.problem)


def _timed(run: Callable[[], list], timeout_s: float, extracted: str | None, rules: tuple[str, str]) -> list:
    """`run()` under the worker's interval timer; a timeout or a checker failure becomes its own verdict (with
    the rule `rules[0]` or `rules[1]`)."""
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return run()
    except _AnswerTimeout:
        return [Verdict("timeout", f"checker exceeded {timeout_s}s", extracted, rules[0])]
    except Exception as exc:  # the checker itself failed: its own verdict, never folded into wrong
        return [Verdict("error", f"checker failed: {type(exc).__name__}: {exc}"[:300], extracted, rules[1])]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _tag(verdict: Verdict, extracted: ExtractedAnswer) -> Verdict:
    return Verdict(
        verdict.label, f"{verdict.reason} [extracted by {extracted.method}]", verdict.extracted, verdict.rule
    )
