"""Assets `duplicates` and `contamination`: the pool between sources and grading (scoring/stages/curation.py)."""

from __future__ import annotations

import dagster as dg

from assets.metadata import counts_metadata, preview_markdown, table_metadata
from assets.resources import CatalogResource, DataRootResource, ProjectResource
from scoring.stages.curation import build_decontamination, build_dedup


@dg.asset(
    group_name="pool",
    kinds={"python", "parquet"},
    deps=["problems"],
    description="Exact, MinHash (char 5-gram) and optional semantic near-duplicates; one row per dropped problem.",
)
def duplicates(project: ProjectResource, data_root: DataRootResource) -> dg.MaterializeResult:
    summary = build_dedup(project.load(), data_root.root())
    total = summary.counts["problems"]
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "kept_id", "similarity", "method"],
                query="select method, count(*) from duplicates group by 1",
            ),
            **counts_metadata(summary.counts),
            "duplicate_rate": dg.MetadataValue.float(summary.counts["duplicates"] / total if total else 0.0),
        }
    )


@dg.asset(
    group_name="pool",
    kinds={"python", "parquet", "duckdb"},
    deps=["duplicates"],
    description="Problems that match a configured benchmark (n-gram overlap, TF-IDF similarity); kept out of the "
    "pool and the curriculum, never deleted.",
)
def contamination(
    project: ProjectResource, data_root: DataRootResource, catalog: CatalogResource
) -> dg.MaterializeResult:
    summary = build_decontamination(project.load(), data_root.root())
    catalog.refresh()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "benchmark", "benchmark_item_id", "method", "score"],
                query="select benchmark, method, count(distinct problem_id) from contamination group by all",
            ),
            **counts_metadata(summary.counts),
            "examples": dg.MetadataValue.md(
                preview_markdown(summary.table, ["problem_id", "benchmark", "score", "matched_text"], rows=5)
            ),
        }
    )
