"""Asset `predictor`: the student's pass-rate predictor (methods.md §6), trained on its measured grades."""

import dagster as dg

from assets.metadata import counts_metadata, preview_markdown
from assets.partitions import STUDENTS
from assets.resources import CatalogResource, DataRootResource, ProjectResource, StudentEngineResource, effective_config
from scoring.stages.difficulty import build_predictor


@dg.asset(
    group_name="grading",
    partitions_def=STUDENTS,
    kinds={"python", "scikitlearn"},
    deps=["difficulty"],
    description="Pass-rate predictor for the student (predictors/<student>/predictor.json + predictor.npz, no "
    "pickle) and its reliability table; adaptive grading of a new pool uses it as a prior (and, if configured, to "
    "skip confidently too-easy/too-hard problems).",
)
def predictor(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    summary = build_predictor(effective_config(project, student, context, root), root)
    columns = ["bin_lo", "bin_hi", "problems", "mean_predicted", "observed_pass_rate", "coverage"]
    catalog.refresh()  # publish the new tables and views to DuckDB
    return dg.MaterializeResult(
        metadata={
            "reliability": dg.MetadataValue.md(preview_markdown(summary.table, columns, rows=20)),
            "duckdb_query": dg.MetadataValue.md("```sql\nselect * from predictor_reliability\n```"),
            **counts_metadata(summary.counts),
            **counts_metadata(summary.figures),
            "path": dg.MetadataValue.path(str(summary.path)),
        }
    )
