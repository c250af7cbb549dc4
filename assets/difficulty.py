"""Asset `difficulty`: per-problem pass rate, intervals, Beta posterior and learnability for the student."""

import dagster as dg

from assets.metadata import counts_metadata, histogram_markdown, per_group_markdown, table_metadata
from assets.partitions import STUDENTS
from assets.resources import CatalogResource, DataRootResource, ProjectResource, StudentEngineResource, effective_config
from assets.run_config import DifficultyRun
from scoring.stages.difficulty import build_difficulty
from scoring.stages.picture_report import key_plot_markdown


@dg.asset(
    group_name="grading",
    partitions_def=STUDENTS,
    kinds={"python", "parquet"},
    deps=["rollouts"],
    description="Difficulty per (problem, student, revision, sampling config, verifier): methods.md §1.",
)
def difficulty(
    context: dg.AssetExecutionContext,
    config: DifficultyRun,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    run_config = config.apply(effective_config(project, student, context, root))
    summary = build_difficulty(run_config, root)
    bands = summary.table.column("band").to_pylist()
    stops = summary.table.column("stop_reason").to_pylist()
    catalog.refresh()  # publish the new tables and views to DuckDB
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "n", "k", "post_mean", "post_lo", "post_hi", "band", "method"],
                query="select method, band, count(*), avg(post_mean) from difficulty group by all order by all",
            ),
            **counts_metadata(summary.counts),
            **counts_metadata({f"band_{b}": bands.count(b) for b in sorted(set(bands))}),
            **counts_metadata({f"stopped_{r}": stops.count(r) for r in sorted(set(stops))}),
            "per_family": dg.MetadataValue.md(per_group_markdown(summary.table, "family", "pass_rate")),
            "pass_rate_histogram": dg.MetadataValue.md(
                histogram_markdown(summary.table.column("pass_rate").to_pylist())
            ),
            "path": dg.MetadataValue.path(str(summary.path)),
            "key_plot": dg.MetadataValue.md(key_plot_markdown(run_config, root, "posterior_knob")),
        }
    )
