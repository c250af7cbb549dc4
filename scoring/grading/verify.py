"""Verification: pull the final answer out of a completion and decide whether it matches the gold answer.

Two pure functions — `parse_answer(text, config)` and `verify(gold, pred, config)` — and a `Verifier` that
checks batches in a pool of worker processes (both cores busy) with a per-answer time limit. math-verify's
own limits use `signal.alarm` in the caller, which breaks in threads; here each worker arms its own timer per
checker, and a hung worker is killed and its batch re-checked one answer at a time. Nothing is ever `eval`ed,
and each worker is locked down after its imports (`scoring.grading.sandbox`): it can neither write files nor
start processes.
Conventions follow `../shared/methods.md` §15 (Qwen2.5-Math extraction order, Math-Verify equivalence);
`scoring.grading.answer_forms` documents the answer forms added in issue 25 (display math after a word,
ASCII relations, decimal commas, decimal approximations of fractions, matrices after an equation).

Which checker decides (`Verdict.rule`): a procedural family's own exact scorer when the problem comes from a
registered family ("family:<name>"), else an exact numeric comparison for plain numbers ("numeric"), a
rounded decimal for a fraction gold ("numeric_approx"), a multiple-choice letter match ("choice"), normalized
string equality ("exact"), and math-verify's symbolic equivalence on the extracted answer ("math_verify").

Then a second candidate, math-verify alone on the full completion ("math_verify_full",
`scoring.grading.full_text`), so the verifier is never worse than math-verify alone where Gradus's extraction
loses. Decision rule: when Gradus's own checkers do not say correct, the verdict is `correct` (rule
"math_verify_full", with both checkers' reasons) if math-verify on the full completion finds the gold answer
*as the final answer*: its pick came from a `\\boxed{}` or a "final answer is" phrase, or no digit follows the
pick in the completion. The proviso exists because math-verify ranks any "answer" word above an unanchored
last expression, so "To answer this, note 3 + 4 = 7 … the total is 12" would otherwise grade 7 correct.
It never overrides a family's exact scorer (a countdown answer equal in value to the gold expression is not a
solution), is not run for multiple-choice golds (math-verify's default extraction reads no letters), and is
skipped after Gradus's checker timed out (the same text would stall it again). It runs under its own timer of
the same length, in the same sandboxed worker, on the same size-limited text.

The audit (`Verifier.audit`) runs every applicable checker, math_verify_full included, so their
disagreements can be inspected (the `verdict_audit` table, the `disagreements` view) instead of guessed.

Verdicts: `correct`, `wrong`, `unparseable` (no answer could be extracted), `timeout` (the checker ran out of
time), `error` (the checker itself failed).
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import signal
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from fractions import Fraction

from pebble import ProcessExpired, ProcessPool
from pydantic import BaseModel, ConfigDict, Field

from scoring.grading import answer_forms, full_text, sandbox
from synthesis.answers import MAX_ANSWER_CHARS, ExtractedAnswer, extract_final_answer
from synthesis.families import FAMILIES
from synthesis.problem import Problem, Verdict
from synthesis.registry import Registry

# Verifiers by name; `<name>_<version>` is the `verifier_version` of every verdict. Bump the version whenever a
# verdict could change (grades made by another version are not reused).
VERIFIERS: Registry[type] = Registry("verifier")
VERIFIER_NAME, VERIFIER_REVISION = "gradus_verify", "v3"  # v3: math_verify_full, issue 25 answer forms
VERIFIER_VERSION = f"{VERIFIER_NAME}_{VERIFIER_REVISION}"
RG_FAMILY_PREFIX = "rg:"


class VerifyConfig(BaseModel):
    """How answers are checked. `timeout_s` bounds one answer; `workers` processes share a batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(5.0, gt=0, description="time limit for checking one answer")
    workers: int = Field(2, ge=1, description="checker processes")
    chunk_size: int = Field(16, ge=1, description="answers sent to a worker at a time")
    use_family_scorer: bool = Field(True, description="let procedural families check their own problems")


DEFAULT_CONFIG = VerifyConfig()
_CHOICE_GOLD = re.compile(r"^\(?([A-Ea-e])\)?$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_SIMPLE_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*(\d+)$|^([+-]?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_SPACES = re.compile(r"\s+")


def parse_answer(text: str, config: VerifyConfig | None = None, *, choices: bool = False) -> ExtractedAnswer | None:
    """The final answer a completion commits to (`\\boxed{}`, "the answer is", a trailing math block or
    relation, last number or, for multiple choice, last letter), or None when it commits to none."""
    del config  # extraction has no knobs yet; the parameter keeps the two functions' shapes aligned
    return answer_forms.refine(text, extract_final_answer(text, choices=choices))


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


def verify(gold: str, pred: str, config: VerifyConfig | None = None) -> Verdict:
    """Compare two final answers. Pure and without a time limit: call it through `Verifier` for untrusted input."""
    del config
    gold, pred, read_as = answer_forms.ascii_relations(gold), answer_forms.ascii_relations(pred), ""
    comma = answer_forms.decimal_comma(pred)
    if comma is not None and "," not in gold and _as_fraction(gold) is not None:
        pred, read_as = comma, f" (decimal comma: read as {comma})"
    verdict = _compare(gold, pred)
    return Verdict(verdict.label, verdict.reason + read_as, verdict.extracted, verdict.rule) if read_as else verdict


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
    return _math_verify(gold, pred)


def _math_verify(gold: str, pred: str) -> Verdict:
    from math_verify import parse
    from math_verify import verify as mv_verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not gold_parsed:
        return Verdict("error", f"gold answer {gold[:80]!r} could not be parsed", pred, "math_verify")
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not pred_parsed:
        return Verdict("unparseable", f"answer {pred[:80]!r} is not a mathematical expression", pred, "math_verify")
    if mv_verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return Verdict("correct", f"equivalent to gold {gold[:80]!r}", pred, "math_verify")
    return Verdict("wrong", f"{pred[:80]!r} is not equivalent to gold {gold[:80]!r}", pred, "math_verify")


def exact_match(gold: str, pred: str) -> Verdict:
    """A strict second opinion for the audit: normalized text equality only."""
    same = _normalize(gold) == _normalize(pred)
    return Verdict("correct" if same else "wrong", "normalized text equality", pred, "exact_match")


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One answer to check: the gold answer, the full completion, and the problem when it is known."""

    gold: str
    completion: str
    problem: Problem | None = None


def _warm_up() -> None:
    """Import and exercise math-verify once per worker, so the first answer's timer does not pay for it; then
    lock the worker down (no file writes, no new processes: `scoring.grading.sandbox`) before it sees model text."""
    _math_verify("\\sqrt{2}", "2^{1/2}")
    full_text.check("1", "So the answer is \\boxed{1}.")  # compiles math-verify's extraction regexes
    sandbox.lock_down()


class _AnswerTimeout(BaseException):
    """Raised by the worker's timer; a BaseException so library code's `except Exception` cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _AnswerTimeout


def _family_scorer(item: CheckItem, use_family: bool):  # returns a scorer or None
    """The problem's own exact scorer: a registered Gradus family, or reasoning-gym's for `rg:` problems."""
    if not use_family or item.problem is None:
        return None
    if item.problem.family.startswith(RG_FAMILY_PREFIX):
        from synthesis.reasoning_gym_source import rg_score  # imported only in workers that meet such problems

        return rg_score
    if item.problem.family not in FAMILIES:
        return None
    return FAMILIES.get(item.problem.family)().score


def _is_rg(item: CheckItem) -> bool:
    return item.problem is not None and item.problem.family.startswith(RG_FAMILY_PREFIX)


def _prepare(item: CheckItem, use_family: bool) -> None:
    """What depends only on the stored problem — importing reasoning-gym, rebuilding its dataset — runs before
    the answer's timer starts: it is the same for every answer to the problem, and the chunk's hard limit bounds
    it. Its failures surface again, as the verdict's reason, when the answer is scored."""
    if use_family and item.problem is not None and _is_rg(item):
        from synthesis.reasoning_gym_source import rg_prepare

        rg_prepare(item.problem)


def _decide(item: CheckItem, extracted: ExtractedAnswer, use_family: bool, audit: bool) -> list[Verdict]:
    """The primary verdict first, then (for the audit) the other checkers' verdicts."""
    family_score = _family_scorer(item, use_family)
    verdicts = []
    if family_score is not None and item.problem is not None:
        family_verdict = family_score(item.problem, extracted.text)
        verdicts.append(
            Verdict(family_verdict.label, family_verdict.reason, extracted.text, f"family:{item.problem.family}")
        )
    if audit or not verdicts:
        verdicts.append(verify(item.gold, extracted.text))
    if audit:
        verdicts.append(exact_match(item.gold, extracted.text))
    return verdicts


def _check_chunk(items: list[CheckItem], timeout_s: float, use_family: bool, audit: bool) -> list[list[Verdict]]:
    """Runs in a worker process (its main thread), so a per-checker interval timer is safe here."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        return [_check_one(item, timeout_s, use_family, audit) for item in items]
    finally:
        signal.signal(signal.SIGALRM, previous)


def _check_one(item: CheckItem, timeout_s: float, use_family: bool, audit: bool) -> list[Verdict]:
    """Gradus's own checkers, then (when it can matter, or for the audit) math-verify on the full completion."""
    choices = _CHOICE_GOLD.match(item.gold.strip()) is not None
    extracted = parse_answer(item.completion, choices=choices)
    if extracted is None:
        verdicts = [Verdict("unparseable", "no \\boxed{}, 'the answer is' or number found", None, "extract")]
    elif len(extracted.text) >= MAX_ANSWER_CHARS:
        verdicts = [Verdict("unparseable", f"answer longer than {MAX_ANSWER_CHARS} chars", None, "extract")]
    else:
        _prepare(item, use_family)
        verdicts = _timed(lambda: _decide(item, extracted, use_family, audit), timeout_s, extracted.text, ("timer", ""))
        verdicts = [_tag(v, extracted) for v in verdicts]
    may_override = not _family_decides(item, use_family) and verdicts[0].label != "correct"
    if choices or verdicts[0].label == "timeout" or not (audit or may_override):
        return verdicts
    rules = (full_text.RULE, full_text.RULE)
    opinion = _timed(lambda: [full_text.check(item.gold, item.completion)], timeout_s, None, rules)[0]
    return _combine(verdicts, opinion, may_override)


def _timed(run, timeout_s: float, extracted: str | None, rules: tuple[str, str]) -> list:
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


def _family_decides(item: CheckItem, use_family: bool) -> bool:
    """Whether a family's exact scorer owns this problem (whatever it said, even when no answer was extracted)."""
    if not use_family or item.problem is None:
        return False
    return _is_rg(item) or item.problem.family in FAMILIES


def _combine(
    verdicts: list[Verdict], opinion: Verdict | tuple[Verdict, full_text.Pick | None], may_override: bool
) -> list[Verdict]:
    """Apply the decision rule: the full-text verdict decides only when it finds gold as the final answer and
    Gradus's own checkers did not say correct; either way it stays in the audit as its own rule."""
    if isinstance(opinion, Verdict):  # the full-text checker timed out or failed
        return [*verdicts, opinion]
    full, pick = opinion
    deciding = verdicts[0]
    if may_override and full.label == "correct" and pick is not None and pick.is_final:
        reason = f"{full.reason}; Gradus's own checkers said {deciding.label} ({deciding.rule}: {deciding.reason})"
        return [Verdict("correct", reason[:1000], full.extracted, full_text.RULE), *verdicts]
    return [*verdicts, full]


def _tag(verdict: Verdict, extracted: ExtractedAnswer) -> Verdict:
    return Verdict(
        verdict.label, f"{verdict.reason} [extracted by {extracted.method}]", verdict.extracted, verdict.rule
    )


_RG_PREPARE_S = 30.0  # importing reasoning-gym (~2 s idle) and building a chunk's datasets, on two busy cores


def _prepare_allowance(chunk: Sequence[CheckItem]) -> float:
    return _RG_PREPARE_S if any(_is_rg(item) for item in chunk) else 0.0


@VERIFIERS.register(
    VERIFIER_NAME,
    version=VERIFIER_REVISION,
    description="family scorers, Qwen2.5-Math extraction and Math-Verify equivalence, then math-verify on the full "
    "completion when it finds gold as the final answer; sandboxed workers (§15, issue 25)",
)
class Verifier:
    """Checks completions against gold answers in worker processes, each answer time-limited."""

    version = VERIFIER_VERSION

    def __init__(self, config: VerifyConfig | None = None, *, timeout_s: float | None = None) -> None:
        config = config or DEFAULT_CONFIG
        if timeout_s is not None:
            config = config.model_copy(update={"timeout_s": timeout_s})
        self.config = config
        self.timeout_s = config.timeout_s
        sandbox.warn_if_degraded()
        self._pool = ProcessPool(
            max_workers=config.workers, context=multiprocessing.get_context("spawn"), initializer=_warm_up
        )

    def protections(self) -> dict[str, bool]:
        """The protections in force in a worker (`scoring.grading.sandbox.active_protections`), for tests and audits."""
        return self._pool.schedule(sandbox.active_protections, timeout=60).result()

    def check(self, items: Sequence[CheckItem]) -> list[Verdict]:
        """The deciding verdict for each item, in order."""
        return [verdicts[0] for verdicts in self._run(items, audit=False)]

    def audit(self, items: Sequence[CheckItem]) -> list[list[Verdict]]:
        """Every applicable checker's verdict for each item (the deciding one first)."""
        return self._run(items, audit=True)

    def check_completions(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for `(gold answer, completion text)` pairs, in order."""
        return self.check([CheckItem(gold, text) for gold, text in pairs])

    def _run(self, items: Sequence[CheckItem], *, audit: bool) -> list[list[Verdict]]:
        cfg = self.config
        chunks = [list(items[i : i + cfg.chunk_size]) for i in range(0, len(items), cfg.chunk_size)]
        # Each checker has its own timer inside the worker (Gradus's, then math-verify on the full text: two per
        # answer); the chunk's hard limit only catches a worker stuck where a timer cannot interrupt it (e.g.
        # inside one huge C-level integer operation).
        futures = [
            self._schedule(chunk, 2 * cfg.timeout_s + 2 + 0.25 * len(chunk) + _prepare_allowance(chunk), audit)
            for chunk in chunks
        ]
        results: list[list[Verdict]] = []
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                results.extend(future.result())
            except (FutureTimeout, ProcessExpired):
                # A worker hung past its own timers or died: re-check this chunk one answer at a time.
                results.extend(self._one_by_one(chunk, audit))
        return results

    def _schedule(self, chunk: list[CheckItem], timeout: float, audit: bool):  # returns a pebble future
        return self._pool.schedule(
            _check_chunk, args=(chunk, self.config.timeout_s, self.config.use_family_scorer, audit), timeout=timeout
        )

    def _one_by_one(self, chunk: list[CheckItem], audit: bool) -> list[list[Verdict]]:
        out = []
        for item in chunk:
            try:
                out.extend(
                    self._schedule([item], 2 * self.config.timeout_s + 1 + _prepare_allowance([item]), audit).result()
                )
            except (FutureTimeout, ProcessExpired) as exc:
                out.append(
                    [
                        Verdict(
                            "timeout" if isinstance(exc, FutureTimeout) else "error",
                            f"checker process {'hung' if isinstance(exc, FutureTimeout) else 'died'}",
                            None,
                            "pool",
                        )
                    ]
                )
        return out

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
