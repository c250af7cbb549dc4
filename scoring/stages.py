"""The pipeline's stages as plain functions over a data root, so Dagster assets (and scripts) stay thin.

Each stage reads its inputs from the data root, writes its tables atomically, and returns a summary that
assets turn into metadata. Reruns are idempotent: problems and grades are rewritten from their inputs,
rollouts are added by key (never duplicated), shards are rewritten byte-identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from engines import Engine
from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.curriculum import STRATEGY, plan_curriculum, write_shards
from scoring.difficulty import grade_rollouts
from scoring.rollouts import run_rollouts, sampling_hash
from scoring.schemas import AUDIT_KEY, PROBLEMS, REJECTS, ROLLOUT_KEY, to_table
from scoring.storage import DataRoot
from scoring.verify import VERIFIER_VERSION, Verifier
from synthesis.problem import Problem
from synthesis.sources import build_pool


@dataclass(slots=True)
class StageSummary:
    """What a stage wrote: its main table, counts, and extra figures for metadata."""

    table: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    figures: dict[str, float | int | str] = field(default_factory=dict)
    path: Path | None = None


def student_partition(config: ProjectConfig) -> dict[str, str]:
    return {"student": config.student.id}


def build_problems(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Gather the configured sources into the `problems` table; rejected inputs go to `rejects`."""
    pool, merged = build_pool(config.sources, Path(config.base_dir))
    problems = to_table([_as_row(p) for p in pool.problems], PROBLEMS)
    rejects = to_table([_as_row(r) for r in pool.rejects], REJECTS)
    path = root.write_table("problems", problems)
    root.write_table("rejects", rejects, {"origin": "sources"})
    return StageSummary(
        problems,
        {"problems": problems.num_rows, "rejects": rejects.num_rows, "merged_duplicates": merged},
        path=path,
    )


def load_problems(root: DataRoot) -> list[Problem]:
    return [Problem(**row) for row in root.read_table("problems").to_pylist()]


def build_rollouts(config: ProjectConfig, root: DataRoot, engine: Engine, *, progress: bool = True) -> StageSummary:
    """K verified rollouts per pool problem for the student, added to its `rollouts` partition."""
    problems = load_problems(root)
    with Verifier(config.verify) as verifier:
        result = run_rollouts(
            problems,
            engine,
            student_id=config.student.id,
            config=config.rollouts,
            verifier=verifier,
            progress=progress,
        )
    fresh = result.rollouts
    root.upsert_table("verdict_audit", result.audit, AUDIT_KEY, student_partition(config))
    # Failed engine calls are not evidence about the student: they go to `rejects` with their reason (replaced
    # each run), stay out of `rollouts`, and are retried next run because the cache never stores failures.
    failed = pc.equal(fresh.column("finish_reason"), "error")
    evidence = fresh.filter(pc.invert(failed))
    rejects = [
        {
            "stage": "rollouts",
            "input_ref": f"{r['problem_id']}#{r['sample_index']}",
            "reason": r["verdict_reason"],
            "raw_text": "",
        }
        for r in fresh.filter(failed).to_pylist()
    ]
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": f"rollouts-{config.student.id}"})
    merged = root.upsert_table("rollouts", evidence, ROLLOUT_KEY, student_partition(config))
    verdicts = fresh.column("verdict").to_pylist()
    counts = {
        "rollouts_this_run": fresh.num_rows,
        "rollouts_stored": merged.num_rows,
        "checker_disagreements": count_disagreements(result.audit),
    }
    counts |= {f"verdict_{v}": verdicts.count(v) for v in sorted(set(verdicts))}
    return StageSummary(
        fresh, counts, engine.stats.as_dict(), path=root.table_path("rollouts", student_partition(config))
    )


def count_disagreements(audit: pa.Table) -> int:
    """Samples whose checkers (family scorer, math-verify, exact match) did not all agree."""
    labels: dict[tuple[object, ...], set[str]] = {}
    for row in audit.to_pylist():
        labels.setdefault(tuple(row[k] for k in ROLLOUT_KEY), set()).add(row["verdict"])
    return sum(len(found) > 1 for found in labels.values())


def build_difficulty(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Grade every key in the student's rollouts partition into its `difficulty` partition."""
    rollouts = root.read_table("rollouts", student_partition(config))
    graded = grade_rollouts(rollouts)
    path = root.write_table("difficulty", graded, student_partition(config))
    return StageSummary(graded, {"graded": graded.num_rows}, path=path)


def current_grades(config: ProjectConfig, root: DataRoot) -> pa.Table:
    """The student's difficulty rows for the configured model revision, sampling config and verifier."""
    grades = root.read_table("difficulty", student_partition(config))
    revision = expected_revision(config.student.engine, root.models_dir)
    mask = pc.and_(
        pc.and_(
            pc.equal(grades.column("student_revision"), revision),
            pc.equal(grades.column("sampling_hash"), sampling_hash(config.rollouts)),
        ),
        pc.equal(grades.column("verifier_version"), VERIFIER_VERSION),
    )
    return grades.filter(mask)


def build_curriculum(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Order the graded pool easy→hard into shards + manifest; excluded problems go to their own table."""
    grades = current_grades(config, root)
    plan = plan_curriculum(root.read_table("problems"), grades, student_id=config.student.id)
    out_dir = root.shards_dir / config.student.id / STRATEGY
    provenance = {
        "student_revision": expected_revision(config.student.engine, root.models_dir),
        "sampling_hash": sampling_hash(config.rollouts),
        "verifier_version": VERIFIER_VERSION,
    }
    manifest, curriculum = write_shards(
        plan, out_dir, config=config.curriculum, student_id=config.student.id, provenance=provenance
    )
    part = {"student": config.student.id, "schedule": STRATEGY}  # keys must not repeat a column name
    root.write_table("curriculum", curriculum, part)
    root.write_table("curriculum_excluded", plan.excluded, part)
    return StageSummary(
        plan.ordered,
        {
            "kept": plan.ordered.num_rows,
            "excluded": plan.excluded.num_rows,
            "shards": len(manifest["shards"]),
        },
        path=out_dir,
    )


def _as_row(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]
