"""Data-quality checks over what the stages wrote; the Dagster asset checks call these (no Dagster here).

Each returns a `CheckOutcome`: passed, a one-line summary, up to a few example failures and counts, so a check
result in the UI says what is wrong and where, not just "failed".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scoring.curriculum.shards import CurriculumReader
from scoring.schemas import SHARD, schema_for
from scoring.storage import DataRoot

EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    passed: bool
    summary: str
    examples: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _schema_problems(path: Path, declared: pa.Schema) -> list[str]:
    """How the Parquet file at `path` departs from `declared` (a missing column may be a newer one: allowed)."""
    try:
        stored = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        return [f"{path}: unreadable Parquet ({exc})"]
    problems = [f"{path}: unexpected column {name!r}" for name in stored.names if name not in declared.names]
    for name in declared.names:
        if name in stored.names and not stored.field(name).type.equals(declared.field(name).type):
            problems.append(
                f"{path}: column {name!r} is {stored.field(name).type}, declared {declared.field(name).type}"
            )
    return problems


def schema_conformance(root: DataRoot, table: str) -> CheckOutcome:
    """Every stored file of `table` (every partition) has only declared columns, each of its declared type."""
    declared = schema_for(table)
    files = [Path(f) for f in root.table_files(table)]
    problems = [problem for path in files for problem in _schema_problems(path, declared)]
    summary = f"{len(files)} file(s) of {table!r} checked; {len(problems)} schema problem(s)"
    return CheckOutcome(not problems, summary, problems[:EXAMPLES], {"files": len(files), "problems": len(problems)})


def shard_conformance(shard_dir: Path) -> CheckOutcome:
    """Every shard listed in the manifest matches its sha256 and positions and has the SHARD columns and types."""
    reader = CurriculumReader(shard_dir)
    problems = [problem for shard in reader.shards for problem in _schema_problems(shard_dir / shard["file"], SHARD)]
    try:
        rows = sum(1 for _ in reader.rows())  # checks sha256, row counts and positions against the manifest
    except Exception as exc:  # noqa: BLE001 — any reader failure is the finding
        problems.append(str(exc))
        rows = 0
    summary = f"{len(reader.shards)} shard(s), {rows} row(s); {len(problems)} problem(s)"
    return CheckOutcome(not problems, summary, problems[:EXAMPLES], {"shards": len(reader.shards), "rows": rows})


def answers_present(shard_dir: Path) -> CheckOutcome:
    """Every curriculum row has a non-empty reference answer (the trainer's reward needs one)."""
    missing = [str(r["problem_id"]) for r in CurriculumReader(shard_dir).rows() if not str(r["answer"] or "").strip()]
    return CheckOutcome(
        not missing,
        f"{len(missing)} curriculum row(s) without an answer",
        missing[:EXAMPLES],
        {"missing": len(missing)},
    )


def difficulty_coverage(shard_dir: Path, grades: pa.Table) -> CheckOutcome:
    """Every curriculum problem has a current grade (n > 0) for the student: no stale or ungraded row."""
    graded = {
        pid for pid, n in zip(grades.column("problem_id").to_pylist(), grades.column("n").to_pylist(), strict=True) if n
    }
    shard_ids = [str(r["problem_id"]) for r in CurriculumReader(shard_dir).rows()]
    ungraded = [pid for pid in shard_ids if pid not in graded]
    summary = f"{len(shard_ids) - len(ungraded)} of {len(shard_ids)} curriculum problems graded for this student"
    return CheckOutcome(
        not ungraded, summary, ungraded[:EXAMPLES], {"curriculum": len(shard_ids), "ungraded": len(ungraded)}
    )
