"""Regression table of real completions from the embedded students (`tests/fixtures/embedded_completions.jsonl`,
recorded by `tests/fixtures/record_completions.py` and reviewed by hand): each must keep its verdict."""

from __future__ import annotations

import json

from scoring.grading.verify import CheckItem, Verifier
from synthesis.problem import Problem, make_problem_id
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "embedded_completions.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _problem(row: dict) -> Problem:
    return Problem(
        problem_id=make_problem_id(row["question"], row["gold"]),
        source=row["source"],
        family=row["family"],
        question=row["question"],
        answer=row["gold"],
        source_ref="fixture",
        metadata=json.dumps(row.get("metadata") or {}),
    )


def test_fixture_covers_both_students_and_every_verdict_kind() -> None:
    assert {row["model"] for row in ROWS} >= {
        "qwen2.5-coder-0.5b-instruct-q4_k_m",
        "qwen2.5-coder-1.5b-instruct-q4_k_m",
    }
    assert {row["expected"] for row in ROWS} >= {"correct", "wrong"}


def test_recorded_completions_keep_their_verdicts(verifier: Verifier) -> None:
    verdicts = verifier.check([CheckItem(row["gold"], row["completion"], _problem(row)) for row in ROWS])
    changed = [
        f"{row['family']}: gold {row['gold']!r}, expected {row['expected']}, got {v.label} ({v.reason})"
        for row, v in zip(ROWS, verdicts, strict=True)
        if v.label != row["expected"]
    ]
    assert not changed, "\n".join(changed)
