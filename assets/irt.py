"""Asset `irt`: a 1-parameter logistic (Rasch) fit of problem difficulty and student ability across students."""

from __future__ import annotations

import dagster as dg

from assets.metadata import counts_metadata, preview_markdown
from assets.resources import CatalogResource, DataRootResource
from scoring.stages.difficulty import build_irt


@dg.asset(
    group_name="grading",
    kinds={"python", "parquet"},
    deps=["difficulty"],
    description="Rasch fit over every graded student and revision: ability per student, difficulty per problem.",
)
def irt(data_root: DataRootResource, catalog: CatalogResource) -> dg.MaterializeResult:
    summary = build_irt(data_root.root())
    catalog.refresh()
    metadata = {**counts_metadata(summary.counts), **counts_metadata(summary.figures)}
    if summary.path is not None:
        columns = ["student_id", "student_revision", "ability_theta", "n_total", "k_total"]
        metadata["students"] = dg.MetadataValue.md(preview_markdown(summary.table, columns, rows=20))
        metadata["duckdb_query"] = dg.MetadataValue.md(
            "```sql\nselect * from irt_items order by difficulty_b desc limit 10\n```"
        )
    return dg.MaterializeResult(metadata=metadata)
