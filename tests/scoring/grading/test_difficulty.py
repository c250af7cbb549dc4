"""Grading rollouts into the difficulty table."""

from __future__ import annotations

import pytest

from scoring.grading.adaptive import BandsConfig
from scoring.grading.difficulty import grade_rollouts
from scoring.schemas import DIFFICULTY, ROLLOUTS, to_table


def _rollout(pid: str, index: int, verdict: str, *, revision: str = "r1", tokens: int = 10) -> dict[str, object]:
    return {
        "problem_id": pid,
        "student_id": "s",
        "student_revision": revision,
        "sampling_hash": "h",
        "sample_index": index,
        "completion": "...",
        "extracted_answer": None,
        "verdict": verdict,
        "verdict_reason": "",
        "verifier_version": "math_verify_v1",
        "prompt_tokens": 5,
        "completion_tokens": tokens,
        "finish_reason": "stop",
        "latency_s": 0.5,
    }


def test_counts_posterior_and_bands() -> None:
    rows = [_rollout("a", i, "correct") for i in range(4)]
    rows += [
        _rollout("b", 0, "correct"),
        _rollout("b", 1, "wrong"),
        _rollout("b", 2, "unparseable"),
        _rollout("b", 3, "timeout"),
        _rollout("b", 4, "error"),
    ]
    rows += [_rollout("c", i, "wrong") for i in range(4)]
    rows += [_rollout("a", i, "wrong", revision="r2") for i in range(2)]
    graded = grade_rollouts(to_table(rows, ROLLOUTS))
    assert graded.schema == DIFFICULTY
    by_key = {(r["problem_id"], r["student_revision"]): r for r in graded.to_pylist()}
    assert len(by_key) == 4
    a, b, c = by_key[("a", "r1")], by_key[("b", "r1")], by_key[("c", "r1")]
    assert (a["n"], a["k"], a["pass_rate"], a["post_mean"]) == (4, 4, 1.0, pytest.approx(5 / 6))
    # timeout and error say nothing about the student: out of n, counted apart; unparseable is a failure
    assert (b["n"], b["k"], b["n_timeout"], b["n_error"]) == (3, 1, 1, 1)
    assert b["learnability"] == pytest.approx((1 / 3) * (2 / 3))
    assert c["k"] == 0 and c["band"] == "too_hard" and c["exp_abs_adv"] == 0.0
    assert by_key[("a", "r2")]["n"] == 2, "revisions are graded apart, never mixed"
    assert a["post_lo"] < a["post_mean"] < a["post_hi"]
    assert a["method"] == "fixed_k_v1" and a["tokens_spent"] == 4 * 15


def test_band_thresholds() -> None:
    bands = BandsConfig(too_easy=0.9, too_hard=0.1)
    assert bands.label(0.95) == "too_easy" and bands.label(0.05) == "too_hard" and bands.label(0.5) == "learnable"
    assert bands.label(0.9) == "too_easy" and bands.label(0.1) == "too_hard", "band edges are inclusive"
    assert bands.certain_band(0.0, 0.08) == "too_hard" and bands.certain_band(0.2, 0.8) == "learnable"
    assert bands.certain_band(0.05, 0.5) is None, "an interval across a boundary certifies nothing"
