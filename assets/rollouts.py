"""Asset `rollouts`: K verified answers per problem from the student (through the persistent cache)."""

import dagster as dg

from assets.metadata import counts_metadata, table_metadata
from assets.partitions import STUDENTS
from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, effective_config
from assets.run_config import RolloutsRun
from scoring.stages.rollouts import build_rollouts


@dg.asset(
    group_name="grading",
    partitions_def=STUDENTS,
    kinds={"python", "parquet"},
    deps=["contamination"],
    description="K sampled, verified student answers per problem; cached, so reruns cost no model calls.",
)
def rollouts(
    context: dg.AssetExecutionContext,
    config: RolloutsRun,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    settings = config.apply(effective_config(project, student, context, root))
    with student.open(root, settings.student) as engine:
        summary = build_rollouts(settings, root, engine)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "sample_index", "verdict", "extracted_answer", "completion_tokens"],
                query="select verdict, count(*) from rollouts group by verdict",
                rows=summary.counts["rollouts_this_run"],
            ),
            **counts_metadata(summary.counts),
            **counts_metadata(summary.figures),
            "student": dg.MetadataValue.text(settings.student.id),
            "path": dg.MetadataValue.path(str(summary.path)),
        }
    )
