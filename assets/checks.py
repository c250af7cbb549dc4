"""Asset checks: data quality of the stored tables and the published shards (the logic is in scoring/checks.py)."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, run_settings
from scoring.checks import CheckOutcome, answers_present, difficulty_coverage, schema_conformance, shard_conformance
from scoring.grading.skills import skill_balance
from scoring.schemas import SHARD
from scoring.stages.curriculum import curriculum_dir
from scoring.stages.difficulty import current_grades


def _result(outcome: CheckOutcome, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    metadata: dict[str, dg.MetadataValue] = {"summary": dg.MetadataValue.text(outcome.summary)}
    metadata |= {key: dg.MetadataValue.int(value) for key, value in outcome.counts.items()}
    if outcome.examples:
        metadata["examples"] = dg.MetadataValue.md("\n".join(f"- `{e}`" for e in outcome.examples))
    return dg.AssetCheckResult(passed=outcome.passed, severity=severity, metadata=metadata)


def _schema_check(asset: str, table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=f"{table}_schema",
        blocking=True,
        description=f"Every stored file of `{table}` has only declared columns, each of its declared type.",
    )
    def check(data_root: DataRootResource) -> dg.AssetCheckResult:
        return _result(schema_conformance(data_root.root(), table), dg.AssetCheckSeverity.ERROR)

    return check


problems_schema = _schema_check("problems", "problems")
rollouts_schema = _schema_check("rollouts", "rollouts")
difficulty_schema = _schema_check("difficulty", "difficulty")


@dg.asset_check(
    asset="curriculum_shards",
    blocking=True,
    description="Every shard matches the manifest (sha256, rows, positions) and the shard schema.",
)
def shards_match_manifest(
    context: dg.AssetCheckExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.AssetCheckResult:
    root, config = run_settings(project, student, data_root, context)
    return _result(shard_conformance(curriculum_dir(config, root)), dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="curriculum_shards", description="Every curriculum row has a reference answer for the trainer's reward."
)
def answers_in_shards(
    context: dg.AssetCheckExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.AssetCheckResult:
    root, config = run_settings(project, student, data_root, context)
    return _result(answers_present(curriculum_dir(config, root)), dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="curriculum_shards",
    description="Every curriculum problem is graded for the configured student, revision, sampling and verifier.",
)
def curriculum_is_graded(
    context: dg.AssetCheckExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.AssetCheckResult:
    root, config = run_settings(project, student, data_root, context)
    outcome = difficulty_coverage(curriculum_dir(config, root), current_grades(config, root))
    return _result(outcome, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="curriculum_shards",
    description="No skill holds more than `skills.max_share` of the curriculum (by main skill, or family when "
    "unlabeled, weighted by each row's STAT-Sel weight). A warning: the run still publishes.",
)
def skill_balance_in_shards(
    context: dg.AssetCheckExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.AssetCheckResult:
    root, config = run_settings(project, student, data_root, context)
    shards = sorted(curriculum_dir(config, root).glob("shard-*.parquet"))
    table = pa.concat_tables([pq.read_table(p) for p in shards]) if shards else SHARD.empty_table()
    balance = skill_balance(root, config.student.id, table, config.skills.max_share)
    shares = "| skill | share |\n|---|---:|\n" + "\n".join(f"| {k} | {v:.1%} |" for k, v in balance.shares.items())
    return dg.AssetCheckResult(
        passed=balance.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"summary": dg.MetadataValue.text(balance.message), "shares": dg.MetadataValue.md(shares)},
    )


DATA_CHECKS = [
    problems_schema,
    rollouts_schema,
    difficulty_schema,
    shards_match_manifest,
    answers_in_shards,
    curriculum_is_graded,
    skill_balance_in_shards,
]
