"""Helpers shared by the tests of `scoring/` and its sub-packages."""

from __future__ import annotations

import pyarrow as pa

from scoring.schemas import PROBLEMS, to_table
from tests.conftest import difficulty_table


def graded_pool(ks: dict[str, int], n: int = 4) -> tuple[pa.Table, pa.Table]:
    """A problems table and its difficulty table: problem `pid` solved `ks[pid]` times of `n` (posterior mean
    (k + 1) / (n + 2)), one student `s`."""
    problems = [
        {
            "problem_id": pid,
            "source": "t",
            "family": "t",
            "question": f"q {pid}",
            "answer": "1",
            "solution": None,
            "difficulty_knob": None,
            "source_ref": pid,
            "metadata": "{}",
        }
        for pid in ks
    ]
    return to_table(problems, PROBLEMS), difficulty_table(ks, n)
