"""Verification: pull the final answer out of a completion and compare it with the gold answer.

Two pure functions — `parse_answer(text)` and `verify(gold, pred)` — and a `Verifier` that runs `verify` in a
process pool with a per-check time limit (math-verify's own limits use `signal.alarm`, which breaks in
threads; a hostile answer like `9^9^9^9` must not hang the run). Nothing is ever `eval`ed.
Answer checking follows `../shared/methods.md` §15 (Qwen2.5-Math extraction order; Math-Verify equivalence).

Verdicts: `correct`, `wrong`, `unparseable` (no answer could be extracted), `timeout` (the checker ran out of
time), `error` (the checker itself failed).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessPool

from synthesis.answers import MAX_ANSWER_CHARS, ExtractedAnswer, extract_final_answer
from synthesis.problem import Verdict

VERIFIER_VERSION = "math_verify_v1"
DEFAULT_TIMEOUT_S = 5.0


def parse_answer(text: str) -> ExtractedAnswer | None:
    """The final answer a completion commits to (`\\boxed{}`, "the answer is", last number), or None."""
    return extract_final_answer(text)


def verify(gold: str, pred: str) -> Verdict:
    """Compare two final answers with math-verify (numeric and symbolic equivalence). No time limit here:
    call it through `Verifier` for untrusted input."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not gold_parsed:
        return Verdict("error", f"gold answer {gold[:80]!r} could not be parsed", pred)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=None)  # type: ignore[arg-type]
    if not pred_parsed:
        return Verdict("unparseable", f"answer {pred[:80]!r} is not a mathematical expression", pred)
    if mv_verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return Verdict("correct", f"equivalent to gold {gold[:80]!r}", pred)
    return Verdict("wrong", f"{pred[:80]!r} is not equivalent to gold {gold[:80]!r}", pred)


def _verify_in_worker(gold: str, pred: str) -> tuple[str, str, str | None]:
    verdict = verify(gold, pred)
    return verdict.label, verdict.reason, verdict.extracted


class Verifier:
    """Checks completions against gold answers in a pool of worker processes, each check time-limited."""

    version = VERIFIER_VERSION

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2) -> None:
        self.timeout_s = timeout_s
        self._pool = ProcessPool(max_workers=workers, context=multiprocessing.get_context("spawn"))

    def check_completions(self, items: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for `(gold answer, completion text)` pairs, in order."""
        verdicts: list[Verdict | None] = [None] * len(items)
        pending = []
        for pos, (gold, text) in enumerate(items):
            extracted = parse_answer(text)
            if extracted is None:
                verdicts[pos] = Verdict("unparseable", "no \\boxed{}, 'the answer is' or number found", None)
                continue
            if len(extracted.text) >= MAX_ANSWER_CHARS:
                verdicts[pos] = Verdict("unparseable", f"answer longer than {MAX_ANSWER_CHARS} chars", None)
                continue
            future = self._pool.schedule(_verify_in_worker, args=(gold, extracted.text), timeout=self.timeout_s)
            pending.append((pos, extracted, future))
        for pos, extracted, future in pending:
            try:
                label, reason, _ = future.result()
                verdicts[pos] = Verdict(label, f"{reason} [extracted by {extracted.method}]", extracted.text)  # type: ignore[arg-type]
            except FutureTimeout:
                verdicts[pos] = Verdict("timeout", f"checker exceeded {self.timeout_s}s", extracted.text)
            except Exception as exc:  # the checker itself crashed: its own verdict, never folded into wrong
                verdicts[pos] = Verdict("error", f"checker failed: {type(exc).__name__}: {exc}"[:300], extracted.text)
        return [v for v in verdicts if v is not None]

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
