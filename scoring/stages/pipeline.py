"""The pipeline's stages as plain functions over a data root, so Dagster assets (and scripts) stay thin.

Each stage reads its inputs from the data root, writes its tables atomically, and returns a summary that
assets turn into metadata. Reruns are idempotent: problems and grades are rewritten from their inputs,
rollouts are added by key (never duplicated), shards are rewritten byte-identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from engines import Engine
from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.curation.pool import build_contamination, build_duplicates, excluded_from_pool
from scoring.curriculum.strategies import CurriculumPlan, plan_curriculum, write_shards
from scoring.grading.difficulty import grade_rollouts
from scoring.grading.policy import grade_adaptively, stored_states
from scoring.grading.ray_rollouts import run_rollouts_on_ray
from scoring.grading.rollouts import RolloutResult, run_rollouts, sampling_hash
from scoring.grading.skills import main_skill, problem_skill_weights
from scoring.grading.verify import VERIFIER_VERSION, Verifier
from scoring.schemas import (
    AUDIT_KEY,
    CURRICULUM_EXCLUDED,
    DIFFICULTY_KEY,
    IRT_ITEMS,
    PROBLEMS,
    REJECTS,
    ROLLOUT_KEY,
    ROLLOUTS,
    VERDICT_AUDIT,
    to_table,
)
from scoring.stages.difficulty import (
    band_filter_decisions,
    ignored_legacy_predictor,
    irt_fit,
    predicted_grades,
    predictor_guidance,
    predictor_path,
    register_revisions,
    train_predictor,
)
from scoring.storage import DataRoot
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
    problems = to_table([_as_row(p) for p in pool.problems], PROBLEMS)
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
    return [Problem(**row) for row in root.read_table("problems").to_pylist()]


def load_pool(root: DataRoot) -> list[Problem]:
    """The problems that get graded: all of `problems` but duplicates and benchmark matches."""
    excluded = excluded_from_pool(root)
    return [p for p in load_problems(root) if p.problem_id not in excluded]


def build_dedup(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Exact, MinHash and (optionally) semantic near-duplicates of `problems` into `duplicates`."""
    table, counts = build_duplicates(config.dedup, root)
    return StageSummary(table, counts, path=root.table_path("duplicates"))


def build_decontamination(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Benchmark leaks in the deduplicated pool into `contamination` (n-gram overlap and similarity)."""
    table, counts = build_contamination(config.decontamination, root, Path(config.base_dir))
    return StageSummary(table, counts, path=root.table_path("contamination"))


def build_rollouts(config: ProjectConfig, root: DataRoot, engine: Engine, *, progress: bool = True) -> StageSummary:
    """Verified rollouts for the student, added to its `rollouts` partition: `rollouts.k` per problem, or
    adaptive rounds (`grading.mode: adaptive`) that stop each problem once its band is certain."""
    problems = load_pool(root)
    part = student_partition(config)
    failures: list[dict[str, object]] = []
    drawn: list[pa.Table] = []
    audits: list[pa.Table] = []

    def store(result: RolloutResult) -> None:
        # Failed engine calls are not evidence about the student: they go to `rejects` with their reason
        # (replaced each run), stay out of `rollouts`, and are retried next run (the cache never stores them).
        root.upsert_table("verdict_audit", result.audit, AUDIT_KEY, part)
        failed = pc.equal(result.rollouts.column("finish_reason"), "error")
        failures.extend(
            {
                "stage": "rollouts",
                "input_ref": f"{r['problem_id']}#{r['sample_index']}",
                "reason": r["verdict_reason"],
                "raw_text": "",
            }
            for r in result.rollouts.filter(failed).to_pylist()
        )
        root.write_table("rejects", to_table(failures, REJECTS), {"origin": f"rollouts-{config.student.id}"})
        root.upsert_table("rollouts", result.rollouts.filter(pc.invert(failed)), ROLLOUT_KEY, part)
        drawn.append(result.rollouts)
        audits.append(result.audit)

    figures: dict[str, float | int | str] = {}
    on_ray = config.distributed.rollouts == "ray"
    ray_totals = {"ray_batches": 0, "ray_workers": 0, "ray_seconds": 0.0}
    ray_totals |= {"cache_shards_merged": 0, "cache_rows_merged": 0}

    def ray_round(batch: Sequence[Problem], ranges: Sequence[tuple[int, int]] | None = None) -> RolloutResult:
        ray_run = run_rollouts_on_ray(
            batch,
            student=config.ray_student(),
            root=root,
            engine=engine,
            verifier=verifier,
            sample_ranges=ranges,
            progress=progress,
        )
        ray_totals["ray_batches"] += ray_run.batches
        ray_totals["ray_workers"] = max(ray_totals["ray_workers"], ray_run.workers)
        ray_totals["ray_seconds"] = round(ray_totals["ray_seconds"] + ray_run.seconds, 3)
        ray_totals["cache_shards_merged"] += ray_run.merge.shards
        ray_totals["cache_rows_merged"] += ray_run.merge.rows_added
        return ray_run.result

    with Verifier(config.verify) as verifier:
        if config.grading.mode == "fixed" and on_ray:
            store(ray_round(problems))
        elif config.grading.mode == "fixed":
            store(
                run_rollouts(
                    problems,
                    engine,
                    student_id=config.student.id,
                    config=config.rollouts,
                    verifier=verifier,
                    progress=progress,
                )
            )
        else:
            stored = stored_states(student_rollouts(config, root, engine.model_revision))
            priors, screened, predictions = predictor_guidance(
                config,
                root,
                problems,
                stored,
                revision=engine.model_revision,
                sampling=sampling_hash(config.rollouts),
                verifier_version=verifier.version,
            )
            root.write_table("predictions", predictions, part)
            run = grade_adaptively(
                [p for p in problems if p.problem_id not in screened],
                engine,
                student_id=config.student.id,
                rollouts=config.rollouts,
                grading=config.grading,
                verifier=verifier,
                store_round=store,
                stored=stored,
                priors=priors,
                progress=progress,
                draw_rollouts=ray_round if on_ray else None,
            )
            reasons = [s.stop_reason for s in run.sequential.states.values()]
            figures |= {"adaptive_rounds": run.sequential.rounds, "rollouts_total": run.sequential.rollouts_drawn}
            figures |= {"predictor_priors": len(priors), "predictor_screened": len(screened)}
            if config.grading.predictor.enabled and (note := ignored_legacy_predictor(root, config.student.id)):
                figures["predictor_note"] = note
            figures |= {f"stopped_{r}": reasons.count(r) for r in sorted(set(map(str, reasons)))}
    if on_ray:
        figures |= ray_totals
    fresh = pa.concat_tables(drawn) if drawn else to_table([], ROLLOUTS)
    audit = pa.concat_tables(audits) if audits else to_table([], VERDICT_AUDIT)
    verdicts = fresh.column("verdict").to_pylist()
    counts = {
        "rollouts_this_run": fresh.num_rows,
        "rollouts_stored": root.read_table("rollouts", part).num_rows,
        "checker_disagreements": count_disagreements(audit),
    }
    counts |= {f"verdict_{v}": verdicts.count(v) for v in sorted(set(verdicts))}
    return StageSummary(fresh, counts, engine.stats.as_dict() | figures, path=root.table_path("rollouts", part))


def student_rollouts(config: ProjectConfig, root: DataRoot, revision: str) -> pa.Table:
    """The student's stored rollouts for one model revision and the configured sampling config."""
    rollouts = root.read_table("rollouts", student_partition(config))
    mask = pc.and_(
        pc.equal(rollouts.column("student_revision"), revision),
        pc.equal(rollouts.column("sampling_hash"), sampling_hash(config.rollouts)),
    )
    return rollouts.filter(mask)


def count_disagreements(audit: pa.Table) -> int:
    """Samples whose checkers (family scorer, math-verify, exact match) did not all agree."""
    labels: dict[tuple[object, ...], set[str]] = {}
    for row in audit.to_pylist():
        labels.setdefault(tuple(row[k] for k in ROLLOUT_KEY), set()).add(row["verdict"])
    return sum(len(found) > 1 for found in labels.values())


def build_difficulty(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Grade every key in the student's rollouts partition into its `difficulty` partition, plus predicted
    rows (`predicted_v1`) for problems the predictor screened out of grading; register new revisions."""
    part = student_partition(config)
    rollouts = root.read_table("rollouts", part)
    adaptive = config.grading.adaptive if config.grading.mode == "adaptive" else None
    measured = grade_rollouts(rollouts, bands=config.grading.bands, adaptive=adaptive)
    predicted = predicted_grades(root.read_table("predictions", part), measured)
    families = {
        row["problem_id"]: row["family"]
        for row in root.read_table("problems").select(["problem_id", "family"]).to_pylist()
    }
    graded = pa.concat_tables([measured, predicted]).sort_by([(k, "ascending") for k in DIFFICULTY_KEY])
    family = pa.array([families.get(pid) for pid in graded.column("problem_id").to_pylist()], type=pa.string())
    graded = graded.set_column(graded.schema.get_field_index("family"), "family", family)
    path = root.write_table("difficulty", graded, part)
    register_revisions(root, measured, config.student.engine.model, part)
    methods = graded.column("method").to_pylist()
    counts = {"graded": graded.num_rows} | {f"method_{m}": methods.count(m) for m in sorted(set(methods))}
    return StageSummary(graded, counts, path=path)


def build_band_filter(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Each configured band filter's decisions over the student's current grades (`band_filter` table)."""
    decisions = band_filter_decisions(config, current_grades(config, root))
    path = root.write_table("band_filter", decisions, student_partition(config))
    counts: dict[str, int] = {}
    for row in decisions.to_pylist():
        counts[f"{row['filter']}_kept"] = counts.get(f"{row['filter']}_kept", 0) + row["kept"]
        counts[f"{row['filter']}_dropped"] = counts.get(f"{row['filter']}_dropped", 0) + (not row["kept"])
    return StageSummary(decisions, counts, path=path)


def build_predictor(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Train the student's pass-rate predictor on its current grades; save it (`predictor.json` + `predictor.npz`)
    and its reliability table. An earlier version's pickled `predictor.joblib` is left unread and reported."""
    predictor, reliability, note = train_predictor(config, root, current_grades(config, root))
    root.write_table("predictor_reliability", reliability, student_partition(config))
    path = predictor_path(root, config.student.id)
    figures: dict[str, float | int | str] = {"status": note}
    if predictor is not None:
        predictor.save(path)
        figures["pseudo_count_rollouts"] = round(predictor.pseudo_count, 3)
    if legacy := ignored_legacy_predictor(root, config.student.id):
        figures["predictor_note"] = legacy
    return StageSummary(reliability, {"reliability_bins": reliability.num_rows}, figures, path=path)


def build_irt(root: DataRoot) -> StageSummary:
    """A Rasch fit over every student and revision graded so far (skipped with fewer than two)."""
    fitted = irt_fit(root.read_all_partitions("difficulty"))
    if fitted is None:
        return StageSummary(to_table([], IRT_ITEMS), {"students": 0}, {"status": "fewer than 2 students graded"})
    items, students = fitted
    root.write_table("irt_items", items)
    path = root.write_table("irt_students", students)
    return StageSummary(students, {"students": students.num_rows, "items": items.num_rows}, path=path)


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


def curriculum_dir(config: ProjectConfig, root: DataRoot) -> Path:
    """Where the student's shards for the configured strategy live: `<root>/shards/<student>/<strategy>`."""
    return root.shards_dir / config.student.id / config.curriculum.strategy_id


def build_curriculum(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Order the graded pool easy→hard into shards + manifest; excluded problems go to their own table."""
    grades = current_grades(config, root)
    outside_pool = excluded_from_pool(root)
    problems = root.read_table("problems")
    in_pool = pa.array([pid not in outside_pool for pid in problems.column("problem_id").to_pylist()], pa.bool_())
    strategy = config.curriculum.strategy_id
    # With skills on, the skill_balanced strategy balances main skills and every row carries its STAT-Sel weight.
    categories = main_skill(root) if config.skills.enabled else None
    weights = problem_skill_weights(root, config.student.id) if config.skills.enabled else None
    plan = plan_curriculum(
        problems.filter(in_pool),
        grades,
        student_id=config.student.id,
        config=config.curriculum,
        categories=categories,
        weights=weights,
    )
    pool_rows = [
        {"student_id": config.student.id, "strategy": strategy, "problem_id": pid, "reason": why, "n": 0, "k": 0}
        for pid, why in sorted(outside_pool.items())
    ]
    plan = CurriculumPlan(plan.ordered, pa.concat_tables([plan.excluded, to_table(pool_rows, CURRICULUM_EXCLUDED)]))
    out_dir = curriculum_dir(config, root)
    provenance = {
        "student_revision": expected_revision(config.student.engine, root.models_dir),
        "sampling_hash": sampling_hash(config.rollouts),
        "verifier_version": VERIFIER_VERSION,
    }
    manifest, curriculum = write_shards(
        plan, out_dir, config=config.curriculum, student_id=config.student.id, provenance=provenance
    )
    part = {"student": config.student.id, "schedule": strategy}  # keys must not repeat a column name
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


def _as_row(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]
