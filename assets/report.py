"""Asset `report`: the picture report of the data root (one self-contained HTML file; `gradus report` writes the
same), rebuilt after each student's build. Its metadata links the file and previews the student's key plots."""

import dagster as dg

from assets.metadata import counts_metadata
from assets.partitions import STUDENTS
from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, run_settings
from scoring.stages.picture_report import build_picture_report, key_plot_markdown


@dg.asset(
    group_name="report",
    partitions_def=STUDENTS,
    kinds={"python", "html"},
    deps=["difficulty", "curriculum_shards", "trainer", "skill_profile", "duplicates", "contamination"],
    description="One offline HTML page: per student, pass rates, posterior against the knob, rollouts per band, "
    "the curriculum's difficulty, skills, training curves and the change between checkpoints; the pool's dedup "
    "and contamination with matched pairs. Every figure shows the DuckDB query that reproduces it.",
)
def report(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.MaterializeResult:
    root, config = run_settings(project, student, data_root, context)
    summary = build_picture_report(config, root)
    path = str(summary.path)
    metadata = {"dagster/row_count": dg.MetadataValue.int(summary.table.num_rows), **counts_metadata(summary.counts)}
    metadata["path"] = dg.MetadataValue.path(path)
    metadata["url"] = dg.MetadataValue.url(summary.path.as_uri())  # type: ignore[union-attr]
    metadata["open"] = dg.MetadataValue.md(
        f"Open the report: `{path}` (a file: copy the path into a browser; it needs no network).\n\n"
        f"Rebuild it from the command line: `gradus report`."
    )
    metadata["key_plot"] = dg.MetadataValue.md(key_plot_markdown(config, root, "posterior_knob"))
    return dg.MaterializeResult(metadata=metadata)
