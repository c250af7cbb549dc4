"""Asset `band_filter`: ODF balanced band, DAPO 0<k<n and Skywork 1..K-1 decisions over the student's grades."""

import dagster as dg

from assets.metadata import counts_metadata, table_metadata
from assets.partitions import STUDENTS
from assets.resources import CatalogResource, DataRootResource, ProjectResource, StudentEngineResource, effective_config
from scoring.stages.difficulty import build_band_filter


@dg.asset(
    group_name="grading",
    partitions_def=STUDENTS,
    kinds={"python", "parquet"},
    deps=["difficulty"],
    description="Kept/dropped decision and reason per problem for each band filter (methods.md §5, §15.3).",
)
def band_filter(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    summary = build_band_filter(effective_config(project, student, context, root), root)
    catalog.refresh()  # publish the new tables and views to DuckDB
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "filter", "kept", "reason", "n", "k"],
                query="select filter, kept, reason, count(*) from band_filter group by all order by all",
            ),
            **counts_metadata(summary.counts),
            "path": dg.MetadataValue.path(str(summary.path)),
        }
    )
