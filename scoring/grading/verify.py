"""Verification: decide whether each completion's final answer matches the gold answer, in sandboxed workers.

The pieces, one concept per module:
- `scoring.grading.checkers`: Gradus's own checkers, two pure functions `parse_answer(text, config)` and
  `verify(gold, pred, config)` (extraction and comparison, `../shared/methods.md` §15), and the answer forms
  of issue 25 (`scoring.grading.answer_forms`);
- `scoring.grading.full_text`: math-verify alone on the full completion, a second candidate;
- `scoring.grading.decision`: which checker decides one answer, and when the full-text candidate runs (only
  where it can change the verdict);
- here, `Verifier`: checks batches in a pool of worker processes (both cores busy) with a per-checker time
  limit. math-verify's own limits use `signal.alarm` in the caller, which breaks in threads; here each worker
  arms its own timer per checker, and a hung worker is killed and its batch re-checked one answer at a time.
  Nothing is ever `eval`ed, and each worker is locked down after its imports (`scoring.grading.sandbox`): it
  can neither write files nor start processes.

`Verifier.check` returns the deciding verdict; `Verifier.audit` every checker's opinion that ran (the
`verdict_audit` table, the `disagreements` view), so disagreements can be inspected instead of guessed.

Verdicts: `correct`, `wrong`, `unparseable` (no answer could be extracted), `timeout` (the checker ran out of
time), `error` (the checker itself failed).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessExpired, ProcessPool

from scoring.grading import sandbox
from scoring.grading.checkers import exact_match, parse_answer, verify
from scoring.grading.decision import CheckItem, CheckSettings, check_chunk, is_rg_item, warm_up
from scoring.grading.verify_config import DEFAULT_CONFIG, VerifyConfig
from synthesis.problem import Verdict
from synthesis.registry import Registry

__all__ = [
    "VERIFIERS",
    "VERIFIER_VERSION",
    "CheckItem",
    "Verifier",
    "VerifyConfig",
    "exact_match",
    "parse_answer",
    "verify",
]

# Verifiers by name; `<name>_<version>` is the `verifier_version` of every verdict. Bump the version whenever a
# verdict could change (grades made by another version are not reused).
VERIFIERS: Registry[type] = Registry("verifier")
VERIFIER_NAME, VERIFIER_REVISION = "gradus_verify", "v3"  # v3: math_verify_full, issue 25 answer forms
VERIFIER_VERSION = f"{VERIFIER_NAME}_{VERIFIER_REVISION}"
WITHOUT_FULL_TEXT = "-without-full-text"  # version suffix of the bench baseline (no math_verify_full candidate)

_RG_PREPARE_S = 30.0  # importing reasoning-gym (~2 s idle) and building a chunk's datasets, on two busy cores


def _prepare_allowance(chunk: Sequence[CheckItem]) -> float:
    return _RG_PREPARE_S if any(is_rg_item(item) for item in chunk) else 0.0


@VERIFIERS.register(
    VERIFIER_NAME,
    version=VERIFIER_REVISION,
    description="family scorers, Qwen2.5-Math extraction and Math-Verify equivalence, then, where Gradus says "
    "not correct, math-verify on the full completion when it finds gold as the final answer; sandboxed workers "
    "(§15, issue 25)",
)
class Verifier:
    """Checks completions against gold answers in worker processes, each answer time-limited.

    `full_text=False` drops the math_verify_full candidate (the decision path before issue 25's candidate):
    only `bench/verify_throughput.py` uses it, as its baseline, and its verdicts carry another
    `version` so they can never pass for this verifier's."""

    version = VERIFIER_VERSION

    def __init__(
        self, config: VerifyConfig | None = None, *, timeout_s: float | None = None, full_text: bool = True
    ) -> None:
        config = config or DEFAULT_CONFIG
        if timeout_s is not None:
            config = config.model_copy(update={"timeout_s": timeout_s})
        self.config = config
        self.timeout_s = config.timeout_s
        self.full_text = full_text
        if not full_text:
            self.version = VERIFIER_VERSION + WITHOUT_FULL_TEXT
        sandbox.warn_if_degraded()
        self._pool = ProcessPool(
            max_workers=config.workers, context=multiprocessing.get_context("spawn"), initializer=warm_up
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
        settings = CheckSettings(self.config.timeout_s, self.config.use_family_scorer, audit, self.full_text)
        return self._pool.schedule(check_chunk, args=(chunk, settings), timeout=timeout)

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
