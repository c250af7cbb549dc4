"""The picture report of a data root (`gradus report`, asset `report`): one self-contained HTML file with, per graded
student, its grading, curriculum, skills, training and checkpoint figures, and the pool's dedup and contamination.

It reads only the catalog's views (in an in-memory DuckDB, so it never waits on or goes stale behind
`catalog.duckdb`), and of those only the columns each figure plots: never the completions. The same data gives
the same bytes: no timestamps, every query totally ordered, matplotlib's SVG ids seeded.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from scoring.catalog import memory_catalog
from scoring.config import ProjectConfig
from scoring.reporting.figures import Catalog, Scope
from scoring.reporting.page import STUDENT_FIGURES, figure_for, render_report
from scoring.reporting.plots import png_data_uri
from scoring.stages.report import StageSummary
from scoring.storage import DataRoot, write_text_atomic

REPORT_FILE = Path("reports") / "report.html"


def report_path(root: DataRoot) -> Path:
    """Where the report of `root` is written by default."""
    return root.path / REPORT_FILE


def open_catalog(root: DataRoot) -> Catalog:
    """The catalog's views of `root` over its current files, in memory."""
    con, views = memory_catalog(root)
    return Catalog(con, frozenset(views))


def fixed_k(config: ProjectConfig) -> tuple[int, str]:
    """The K an adaptively graded problem would get without early stopping (the `max_k` its stop must agree with),
    and the config key it comes from."""
    return config.grading.adaptive.max_k, "grading.adaptive.max_k"


def student_scopes(catalog: Catalog, config: ProjectConfig) -> list[Scope]:
    """One scope per student with difficulty rows, at its latest graded revision (by `student_revisions`, else
    the greatest revision name); the configured student first, the others by id."""
    if catalog.missing("difficulty"):
        return []
    graded = "select distinct student_id, student_revision from difficulty"
    if catalog.missing("student_revisions"):
        query = f"select student_id, student_revision, null as graded_at from ({graded})"
    else:
        query = (
            "select d.student_id, d.student_revision, max(r.first_graded_at) as graded_at "
            f"from ({graded}) d left join student_revisions r using (student_id, student_revision) group by all"
        )
    latest: dict[str, tuple[bool, object, str]] = {}
    for row in catalog.rows(query):
        rank = (row["graded_at"] is not None, row["graded_at"] or 0, str(row["student_revision"]))
        student = str(row["student_id"])
        if student not in latest or rank > latest[student]:
            latest[student] = rank
    k, source = fixed_k(config)
    order = sorted(latest, key=lambda s: (s != config.student.id, s))
    return [Scope(student, latest[student][2], k, source) for student in order]


def build_picture_report(config: ProjectConfig, root: DataRoot, out: Path | None = None) -> StageSummary:
    """Write the report of `root` to `out` (default `<root>/reports/report.html`) atomically; the summary's table
    lists each student's figures and whether each was drawn or left as a note."""
    catalog = open_catalog(root)
    try:
        scopes = student_scopes(catalog, config)
        html, counts = render_report(catalog, scopes, str(root.path))
    finally:
        catalog.con.close()
    target = (out or report_path(root)).expanduser().resolve()
    write_text_atomic(html, target)
    rows = [
        {"student_id": scope.student_id, "student_revision": scope.revision, "figures": len(STUDENT_FIGURES)}
        for scope in scopes
    ]
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema([("student_id", pa.string()), ("student_revision", pa.string()), ("figures", pa.int32())]),
    )
    return StageSummary(table=table, counts=counts | {"bytes": len(html.encode("utf-8"))}, path=target)


def key_plot_markdown(config: ProjectConfig, root: DataRoot, key: str) -> str:
    """The configured student's figure `key` (see `STUDENT_FIGURES`) as markdown for Dagster metadata: the plot as
    an inline PNG, its caption, and the query that reproduces it; or the note saying why there is no plot."""
    catalog = open_catalog(root)
    try:
        scope = next((s for s in student_scopes(catalog, config) if s.student_id == config.student.id), None)
        if scope is None:
            return f"No graded rows for student `{config.student.id}` yet."
        figure = figure_for(catalog, scope, key)
    finally:
        catalog.con.close()
    lines = [f"**{figure.title}**", ""]
    if figure.plot is not None:
        lines += [f"![{figure.title}]({png_data_uri(figure.plot)})", ""]
    if figure.note:
        lines += [figure.note, ""]
    lines += [figure.caption, "", "```sql", figure.query, "```"]
    return "\n".join(lines)
