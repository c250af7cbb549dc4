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


def test_tallies_from_stored_files_grade_like_the_rows_in_memory(tmp_path) -> None:  # noqa: ANN001
    """The difficulty stage tallies in DuckDB over the stored files (several appends, one with a latency a
    float sum would round differently); the grades equal those of the same rows read into memory."""
    from scoring.grading.difficulty import grade_tallies, tally_sql
    from scoring.schemas import ROLLOUT_EVIDENCE_COLUMNS, ROLLOUT_KEY
    from scoring.storage import DataRoot

    root = DataRoot(tmp_path)
    verdicts = ["correct", "wrong", "correct", "timeout", "unparseable", "correct", "error", "wrong"]
    batches = [
        [
            _rollout(f"p{p}", i, verdicts[(p * 3 + i) % len(verdicts)], tokens=p + i)
            for p in range(12)
            for i in range(start, start + 3)
        ]
        for start in (0, 3, 6)
    ]
    for batch in batches:
        for row in batch:
            row["latency_s"] = 0.1 + row["sample_index"] * 0.0001
        root.upsert_table("rollouts", to_table(batch, ROLLOUTS), ROLLOUT_KEY, {"student": "s"})
    assert len(root.table_files("rollouts", {"student": "s"})) == 3
    tallies = root.query_table("rollouts", tally_sql("stored"), {"student": "s"}, columns=ROLLOUT_EVIDENCE_COLUMNS)
    stored = grade_tallies(tallies)
    in_memory = grade_rollouts(to_table([r for b in batches for r in b], ROLLOUTS))
    assert stored.num_rows == 12 and stored.equals(in_memory)
    by_id = {r["problem_id"]: r for r in stored.to_pylist()}
    expected = [verdicts[(0 * 3 + i) % len(verdicts)] for i in range(9)]
    assert by_id["p0"]["k"] == expected.count("correct")
    assert by_id["p0"]["n"] == 9 - expected.count("timeout") - expected.count("error")
    assert root.query_table("rollouts", tally_sql("stored"), {"student": "other"}) is None


def test_rows_sharing_counts_get_their_own_keys_and_counts() -> None:
    """Statistics are computed once per distinct (n, k) and spread by index: each row still gets its own."""
    rows = [_rollout(f"q{p}", i, "correct" if i < p % 5 else "wrong") for p in range(40) for i in range(4)]
    graded = grade_rollouts(to_table(rows, ROLLOUTS))
    for row in graded.to_pylist():
        p = int(row["problem_id"][1:])
        assert row["k"] == min(p % 5, 4) and row["pass_rate"] == pytest.approx(min(p % 5, 4) / 4)
        assert row["post_mean"] == pytest.approx((row["k"] + 1) / 6)
