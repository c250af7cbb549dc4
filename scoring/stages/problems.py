"""The `problems` stage: the configured sources and every accepted synthesized problem, as one table.

Also the readers the later stages share: `load_problems` (the whole table) and `load_pool` (what gets graded).
The stage rewrites `problems` and the sources' `rejects` partition from its inputs, so a rerun is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from scoring.config import ProjectConfig
from scoring.curation.pool import excluded_from_pool
from scoring.schemas import PROBLEMS, REJECTS, to_table
from scoring.stages.report import StageSummary
from scoring.storage import DataRoot
from synthesis.problem import Problem
from synthesis.sources import build_pool


def build_problems(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Gather the configured sources and every accepted synthesized problem into the `problems` table; rejected
    inputs go to `rejects`."""
    pool, merged = build_pool(config.sources, Path(config.base_dir))
    seen = {p.problem_id for p in pool.problems}
    synthesized = 0
    for row in root.read_all_partitions("synthesized_problems").to_pylist():
        row.pop("method"), row.pop("round")
        if row["problem_id"] in seen:
            merged += 1
            continue
        seen.add(row["problem_id"])
        pool.problems.append(Problem(**row))
        synthesized += 1
    problems = _rows_table(pool.problems, PROBLEMS)
    rejects = to_table([_as_row(r) for r in pool.rejects], REJECTS)
    path = root.write_table("problems", problems)
    root.write_table("rejects", rejects, {"origin": "sources"})
    return StageSummary(
        problems,
        {
            "problems": problems.num_rows,
            "synthesized": synthesized,
            "rejects": rejects.num_rows,
            "merged_duplicates": merged,
        },
        path=path,
    )


def load_problems(root: DataRoot) -> list[Problem]:
    """Every row of the `problems` table as a `Problem`."""
    return [Problem(**row) for row in root.read_table("problems").to_pylist()]


def load_pool(root: DataRoot) -> list[Problem]:
    """The problems that get graded: all of `problems` but duplicates and benchmark matches."""
    excluded = excluded_from_pool(root)
    return [p for p in load_problems(root) if p.problem_id not in excluded]


def _rows_table(records: Sequence[object], schema: pa.Schema, batch: int = 50_000) -> pa.Table:
    """The records as one table, converted a batch at a time (never a dict per record for the whole pool)."""
    parts = [to_table([_as_row(r) for r in records[lo : lo + batch]], schema) for lo in range(0, len(records), batch)]
    return pa.concat_tables(parts) if parts else to_table([], schema)


def _as_row(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]
