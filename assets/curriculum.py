"""Asset `curriculum_shards`: the graded pool ordered easy→hard as Parquet shards + manifest."""

import dagster as dg

from assets.metadata import counts_metadata, histogram_markdown, per_group_markdown, table_metadata
from assets.partitions import STUDENTS
from assets.resources import (
    CatalogResource,
    DataRootResource,
    ProjectResource,
    StudentEngineResource,
    effective_config,
    run_settings,
)
from assets.run_config import CurriculumRun
from scoring.curation.pool import contaminated_in_shards
from scoring.curriculum.shards import CurriculumReader
from scoring.stages.curriculum import build_curriculum, curriculum_dir
from scoring.stages.picture_report import key_plot_markdown


@dg.asset(
    group_name="curriculum",
    partitions_def=STUDENTS,
    kinds={"python", "parquet", "duckdb"},
    deps=["difficulty", "skill_profile"],
    description="Curriculum-ordered shards (easy→hard by posterior mean); signal-free problems excluded.",
)
def curriculum_shards(
    context: dg.AssetExecutionContext,
    config: CurriculumRun,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    run_config = config.apply(effective_config(project, student, context, root))
    summary = build_curriculum(run_config, root)
    views = catalog.refresh()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["position", "problem_id", "family", "post_mean", "question"],
                query="select position, family, post_mean, question from shards order by position",
            ),
            **counts_metadata(summary.counts),
            "difficulty_histogram": dg.MetadataValue.md(
                histogram_markdown(summary.table.column("difficulty").to_pylist(), label="difficulty")
            ),
            "per_family": dg.MetadataValue.md(per_group_markdown(summary.table, "family", "post_mean")),
            "per_stage": dg.MetadataValue.md(per_group_markdown(summary.table, "stage", "post_mean")),
            "catalog_views": dg.MetadataValue.text(", ".join(views)),
            "shard_dir": dg.MetadataValue.path(str(summary.path)),
            "key_plot": dg.MetadataValue.md(key_plot_markdown(run_config, root, "curriculum")),
        }
    )


@dg.asset_check(
    asset="curriculum_shards",
    blocking=True,
    description="No problem that matches a benchmark (the `contamination` table) is in the published shards.",
)
def no_contaminated_problems_in_shards(
    context: dg.AssetCheckExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.AssetCheckResult:
    root, config = run_settings(project, student, data_root, context)
    shard_ids = [str(row["problem_id"]) for row in CurriculumReader(curriculum_dir(config, root)).rows()]
    leaked = contaminated_in_shards(root, shard_ids)
    return dg.AssetCheckResult(
        passed=not leaked,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"shard_problems": len(shard_ids), "contaminated": len(leaked), "examples": ", ".join(leaked[:5])},
    )
