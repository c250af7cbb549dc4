"""The `rollouts` stage: verified student answers, added to the student's `rollouts` partition.

Three paths draw them: a fixed `rollouts.k` per problem in this process, the same on Ray actors
(`distributed.rollouts: ray`), or adaptive rounds (`grading.mode: adaptive`, each round drawn locally or on Ray)
that stop each problem once its band is certain. Every path stores through one `_Sink`, so failed engine calls are
handled alike everywhere. Rollouts are added by key, so a rerun never duplicates one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from engines import Engine
from scoring.config import ProjectConfig
from scoring.grading.policy import grade_adaptively, state_counts_sql, stored_states
from scoring.grading.ray_rollouts import run_rollouts_on_ray
from scoring.grading.rollouts import RolloutResult, run_rollouts, sampling_hash
from scoring.grading.verify import Verifier
from scoring.schemas import (
    AUDIT_KEY,
    REJECTS,
    ROLLOUT_EVIDENCE_COLUMNS,
    ROLLOUT_KEY,
    ROLLOUTS,
    to_table,
)
from scoring.stages.difficulty import ignored_legacy_predictor, predictor_guidance
from scoring.stages.problems import load_pool
from scoring.stages.report import PREVIEW_ROWS, StageSummary, student_partition
from scoring.storage import DataRoot
from synthesis.problem import Problem

# Fixed-K grading draws and stores this many problems' samples at a time (K x this many completions in memory).
FIXED_CHUNK_PROBLEMS = 1024

Figures = dict[str, float | int | str]


def build_rollouts(config: ProjectConfig, root: DataRoot, engine: Engine, *, progress: bool = True) -> StageSummary:
    """Verified rollouts for the student, added to its `rollouts` partition: `rollouts.k` per problem, or
    adaptive rounds (`grading.mode: adaptive`) that stop each problem once its band is certain."""
    problems = load_pool(root)
    sink = _Sink(config, root)
    figures: Figures = {}
    with Verifier(config.verify) as verifier:
        ray = _RayRounds(config, root, engine, verifier, progress) if config.distributed.rollouts == "ray" else None
        if config.grading.mode == "fixed" and ray is not None:
            sink(ray(problems))
        elif config.grading.mode == "fixed":
            # in chunks, each stored before the next is drawn: memory is bounded by a chunk, not by the pool
            for start in range(0, len(problems), FIXED_CHUNK_PROBLEMS):
                chunk = problems[start : start + FIXED_CHUNK_PROBLEMS]
                sink(_fixed_rollouts(config, chunk, engine, verifier, None, progress))
        else:
            figures = _adaptive_rollouts(config, root, problems, engine, verifier, sink, ray, progress)
    if ray is not None:
        figures |= ray.totals
    return sink.summary(engine, figures)


def _fixed_rollouts(
    config: ProjectConfig,
    problems: Sequence[Problem],
    engine: Engine,
    verifier: Verifier,
    ray: _RayRounds | None,
    progress: bool,
) -> RolloutResult:
    """`rollouts.k` samples of every problem, on the Ray actors or in this process."""
    if ray is not None:
        return ray(problems)
    return run_rollouts(
        problems, engine, student_id=config.student.id, config=config.rollouts, verifier=verifier, progress=progress
    )


def _adaptive_rollouts(
    config: ProjectConfig,
    root: DataRoot,
    problems: Sequence[Problem],
    engine: Engine,
    verifier: Verifier,
    sink: _Sink,
    ray: _RayRounds | None,
    progress: bool,
) -> Figures:
    """Adaptive rounds over the problems the student's predictor (when it has one) did not screen out; each round
    is stored before the next is drawn. Returns the run's figures (rounds, rollouts, stop reasons)."""
    sql = state_counts_sql("stored", engine.model_revision, sampling_hash(config.rollouts))
    counts = root.query_table("rollouts", sql, student_partition(config), columns=ROLLOUT_EVIDENCE_COLUMNS)
    stored = stored_states(counts) if counts is not None else {}
    priors, screened, predictions = predictor_guidance(
        config,
        root,
        problems,
        stored,
        revision=engine.model_revision,
        sampling=sampling_hash(config.rollouts),
        verifier_version=verifier.version,
    )
    root.write_table("predictions", predictions, student_partition(config))
    run = grade_adaptively(
        [p for p in problems if p.problem_id not in screened],
        engine,
        student_id=config.student.id,
        rollouts=config.rollouts,
        grading=config.grading,
        verifier=verifier,
        store_round=sink,
        stored=stored,
        priors=priors,
        progress=progress,
        draw_rollouts=ray,
    )
    reasons = [s.stop_reason for s in run.sequential.states.values()]
    figures: Figures = {"adaptive_rounds": run.sequential.rounds, "rollouts_total": run.sequential.rollouts_drawn}
    figures |= {"predictor_priors": len(priors), "predictor_screened": len(screened)}
    if config.grading.predictor.enabled and (note := ignored_legacy_predictor(root, config.student.id)):
        figures["predictor_note"] = note
    return figures | {f"stopped_{r}": reasons.count(r) for r in sorted(set(map(str, reasons)))}


@dataclass(slots=True)
class _RayRounds:
    """Draws rollouts on the Ray actors (a whole run or one adaptive round) and adds up what each job reports."""

    config: ProjectConfig
    root: DataRoot
    engine: Engine
    verifier: Verifier
    progress: bool
    totals: dict[str, float | int] = field(
        default_factory=lambda: {
            "ray_batches": 0,
            "ray_workers": 0,
            "ray_seconds": 0.0,
            "cache_shards_merged": 0,
            "cache_rows_merged": 0,
        }
    )

    def __call__(self, batch: Sequence[Problem], ranges: Sequence[tuple[int, int]] | None = None) -> RolloutResult:
        ray_run = run_rollouts_on_ray(
            batch,
            student=self.config.ray_student(),
            root=self.root,
            engine=self.engine,
            verifier=self.verifier,
            sample_ranges=ranges,
            progress=self.progress,
        )
        totals = self.totals
        totals["ray_batches"] += ray_run.batches
        totals["ray_workers"] = max(totals["ray_workers"], ray_run.workers)
        totals["ray_seconds"] = round(totals["ray_seconds"] + ray_run.seconds, 3)
        totals["cache_shards_merged"] += ray_run.merge.shards
        totals["cache_rows_merged"] += ray_run.merge.rows_added
        return ray_run.result


@dataclass(slots=True)
class _Sink:
    """Stores each drawn batch as it arrives and keeps only running counts and a short preview for the summary,
    so a run's memory does not grow with the pool (the completion cache and the table hold the rows)."""

    config: ProjectConfig
    root: DataRoot
    failures: list[dict[str, object]] = field(default_factory=list)
    preview: pa.Table | None = None
    rows: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    disagreements: int = 0

    def __call__(self, result: RolloutResult) -> None:
        # Failed engine calls are not evidence about the student: they go to `rejects` with their reason
        # (replaced each run), stay out of `rollouts`, and are retried next run (the cache never stores them).
        failed = pc.equal(result.rollouts.column("finish_reason"), "error")
        self.failures.extend(
            {
                "stage": "rollouts",
                "input_ref": f"{r['problem_id']}#{r['sample_index']}",
                "reason": r["verdict_reason"],
                "raw_text": "",
            }
            for r in result.rollouts.filter(failed).to_pylist()
        )
        origin = {"origin": f"rollouts-{self.config.student.id}"}
        if self.failures or self.rows == 0:  # replaced each run, so an empty first write clears the last run's
            self.root.write_table("rejects", to_table(self.failures, REJECTS), origin)
        store_rollouts(self.config, self.root, result.rollouts, result.audit)
        self.rows += result.rollouts.num_rows
        self.verdicts.update(result.rollouts.column("verdict").to_pylist())
        self.disagreements += count_disagreements(result.audit)
        if self.preview is None or self.preview.num_rows < PREVIEW_ROWS:
            head = result.rollouts.slice(0, PREVIEW_ROWS)
            self.preview = head if self.preview is None else pa.concat_tables([self.preview, head])

    def summary(self, engine: Engine, figures: Figures) -> StageSummary:
        """This run's rollouts (engine errors included), verdict counts, checker disagreements and engine cost."""
        part = student_partition(self.config)
        preview = self.preview if self.preview is not None else to_table([], ROLLOUTS)
        counts = {
            "rollouts_this_run": self.rows,
            "rollouts_stored": self.root.read_table("rollouts", part, columns=["problem_id"]).num_rows,
            "checker_disagreements": self.disagreements,
        }
        counts |= {f"verdict_{v}": self.verdicts[v] for v in sorted(self.verdicts)}
        path = self.root.table_path("rollouts", part)
        return StageSummary(preview.slice(0, PREVIEW_ROWS), counts, engine.stats.as_dict() | figures, path=path)


def store_rollouts(config: ProjectConfig, root: DataRoot, rollouts: pa.Table, audit: pa.Table) -> None:
    """Add the student's rollouts to its partition by key, with their verdict audit. Failed engine calls are not
    evidence about the student and stay out."""
    part = student_partition(config)
    root.upsert_table("verdict_audit", audit, AUDIT_KEY, part)
    ok = pc.not_equal(rollouts.column("finish_reason"), "error")
    root.upsert_table("rollouts", rollouts.filter(ok), ROLLOUT_KEY, part)


def student_rollouts(
    config: ProjectConfig, root: DataRoot, revision: str, *, columns: Sequence[str] | None = None
) -> pa.Table:
    """The student's stored rollouts for one model revision and the configured sampling config (only `columns`
    when given: grading needs no completion texts)."""
    rollouts = root.read_table("rollouts", student_partition(config), columns=columns)
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
