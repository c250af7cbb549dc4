"""The `curriculum` stage: the student's graded pool ordered by the configured strategy into Parquet shards and a
manifest, with the excluded problems (and why) in their own table.

Shards are rewritten byte-identically from the same grades, so a rerun changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.curation.pool import excluded_from_pool
from scoring.curriculum.shards import write_shards
from scoring.curriculum.strategies import CurriculumPlan, plan_curriculum
from scoring.grading.rollouts import sampling_hash
from scoring.grading.skills import main_skill, problem_skill_weights
from scoring.grading.verify import VERIFIER_VERSION
from scoring.schemas import CURRICULUM_EXCLUDED, to_table
from scoring.stages.angles import cached_angle_signals
from scoring.stages.difficulty import current_grades
from scoring.stages.report import StageSummary
from scoring.storage import DataRoot


def curriculum_dir(config: ProjectConfig, root: DataRoot) -> Path:
    """Where the student's shards for the configured strategy live: `<root>/shards/<student>/<strategy>`."""
    return root.shards_dir / config.student.id / config.curriculum.strategy_id


def build_curriculum(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Order the graded pool easy→hard into shards + manifest; excluded problems go to their own table."""
    plan = _plan(config, root)
    out_dir = curriculum_dir(config, root)
    provenance = {
        "student_revision": expected_revision(config.student.engine, root.models_dir),
        "sampling_hash": sampling_hash(config.rollouts),
        "verifier_version": VERIFIER_VERSION,
    }
    manifest, curriculum = write_shards(
        plan, out_dir, config=config.curriculum, student_id=config.student.id, provenance=provenance
    )
    part = {"student": config.student.id, "schedule": config.curriculum.strategy_id}  # keys must not repeat a column
    root.write_table("curriculum", curriculum, part)
    root.write_table("curriculum_excluded", plan.excluded, part)
    return StageSummary(
        plan.ordered,
        {
            "kept": plan.ordered.num_rows,
            "excluded": plan.excluded.num_rows,
            "shards": len(manifest["shards"]),
            "skill_weighted": sum(1 for w in plan.ordered.column("weight").to_pylist() if w != 1.0),
        },
        path=out_dir,
    )


def _plan(config: ProjectConfig, root: DataRoot) -> CurriculumPlan:
    """The strategy's plan over the pool's graded problems; problems outside the pool (duplicates, benchmark
    matches) join its excluded rows with their reason."""
    outside_pool = excluded_from_pool(root)
    problems = root.read_table(
        "problems", columns=["problem_id", "source", "family", "difficulty_knob", "question", "answer"]
    )
    in_pool = pc.invert(pc.is_in(problems.column("problem_id"), value_set=pa.array(sorted(outside_pool), pa.string())))
    # With skills on, the skill_balanced strategy balances main skills and every row carries its STAT-Sel weight.
    categories = main_skill(root) if config.skills.enabled else None
    weights = problem_skill_weights(root, config.student.id) if config.skills.enabled else None
    pool = problems.filter(in_pool)
    signals = None
    if config.curriculum.strategy == "gain_rl":
        # GAIN-RL orders by the angle signal of the model to be trained (methods §16), cached in `angle_signals`
        pairs = zip(pool.column("problem_id").to_pylist(), pool.column("question").to_pylist(), strict=True)
        signals = cached_angle_signals(root, list(pairs), model=config.trainer.model, prompt=config.trainer.prompt)
    plan = plan_curriculum(
        pool,
        current_grades(config, root),
        student_id=config.student.id,
        config=config.curriculum,
        categories=categories,
        weights=weights,
        signals=signals.scores if signals is not None else None,
    )
    strategy = config.curriculum.strategy_id
    pool_rows = [
        {"student_id": config.student.id, "strategy": strategy, "problem_id": pid, "reason": why, "n": 0, "k": 0}
        for pid, why in sorted(outside_pool.items())
    ]
    return CurriculumPlan(plan.ordered, pa.concat_tables([plan.excluded, to_table(pool_rows, CURRICULUM_EXCLUDED)]))
