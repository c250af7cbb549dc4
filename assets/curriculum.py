"""Asset `curriculum_shards`: the graded pool ordered easy→hard as Parquet shards + manifest."""

from __future__ import annotations

import dagster as dg

from assets.metadata import counts_metadata, histogram_markdown, table_metadata
from assets.resources import (
    CatalogResource,
    DataRootResource,
    ProjectResource,
    StudentEngineResource,
    effective_config,
)
from scoring.stages import build_curriculum


@dg.asset(
    group_name="curriculum",
    kinds={"python", "parquet", "duckdb"},
    deps=["difficulty"],
    description="Curriculum-ordered shards (easy→hard by posterior mean); signal-free problems excluded.",
)
def curriculum_shards(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    summary = build_curriculum(effective_config(project, student), data_root.root())
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
            "catalog_views": dg.MetadataValue.text(", ".join(views)),
            "shard_dir": dg.MetadataValue.path(str(summary.path)),
        }
    )
