"""Asset `trainer_exports`: the curriculum in verl's, TRL's and Hugging Face datasets' layouts, in order."""

import dagster as dg

from assets.metadata import counts_metadata, preview_markdown
from assets.partitions import STUDENTS
from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, effective_config
from scoring.stages.training import build_exports


@dg.asset(
    group_name="curriculum",
    partitions_def=STUDENTS,
    kinds={"python", "parquet"},
    deps=["curriculum_shards"],
    description="Curriculum shards exported for trainers: verl RL Parquet, TRL conversational Parquet, HF dataset.",
)
def trainer_exports(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    summary = build_exports(effective_config(project, student, context, root), root)
    metadata = {**counts_metadata(summary.counts), **counts_metadata(summary.figures)}
    if summary.table.num_rows:
        metadata["exports"] = dg.MetadataValue.md(preview_markdown(summary.table, summary.table.column_names, 10, 90))
    metadata["export_dir"] = dg.MetadataValue.path(str(summary.path))
    verl = summary.path / "verl" / "train-*.parquet" if summary.path is not None else None
    metadata["duckdb_query"] = dg.MetadataValue.md(f"```sql\nselect * from read_parquet('{verl}') limit 5\n```")
    return dg.MaterializeResult(metadata=metadata)
