"""Asset checks: data quality of the stored tables and the published shards (the logic is in scoring/checks.py)."""

import dagster as dg

from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, run_settings
from scoring.checks import CheckOutcome, answers_present, difficulty_coverage, schema_conformance, shard_conformance
from scoring.stages import current_grades, curriculum_dir


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


DATA_CHECKS = [
    problems_schema,
    rollouts_schema,
    difficulty_schema,
    shards_match_manifest,
    answers_in_shards,
    curriculum_is_graded,
]
