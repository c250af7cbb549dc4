"""The picture report on a small real data root (tests/report_data.py): every figure drawn, every caption's query
reproduces the plotted rows through the real catalog file, reruns are byte-identical, absent tables become notes,
and data text is escaped. The browser test (tests/pipelines/test_report_browser.py) checks the page as rendered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scoring.catalog import refresh_catalog
from scoring.config import ProjectConfig
from scoring.reporting.page import POOL_FIGURES, STUDENT_FIGURES
from scoring.schemas import TABLES, to_table
from scoring.stages.picture_report import build_picture_report, key_plot_markdown, open_catalog, student_scopes
from scoring.storage import DataRoot
from tests.report_data import INJECTION, NEW, STUDENT, build_report_root

FIGURE_BLOCK = re.compile(r'<figure class="plot" id="([^"]+)" data-figure="([^"]+)">(.*?)</figure>', re.S)


def _figures(html: str) -> dict[str, str]:
    return {element_id: body for element_id, _key, body in FIGURE_BLOCK.findall(html)}


@pytest.fixture(scope="module")
def full_root(tmp_path_factory: pytest.TempPathFactory) -> DataRoot:
    return build_report_root(tmp_path_factory.mktemp("report") / "root")


def _config() -> ProjectConfig:
    return ProjectConfig(student={"id": STUDENT})


def test_every_figure_is_drawn_with_caption_and_query(full_root: DataRoot, tmp_path: Path) -> None:
    summary = build_picture_report(_config(), full_root, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    figures = _figures(html)
    expected = {f"{STUDENT}-{key}" for key in STUDENT_FIGURES} | {f"pool-{key}" for key in POOL_FIGURES}
    assert set(figures) == expected
    for element_id, body in figures.items():
        assert "<figcaption>" in body and "DuckDB query" in body, element_id
        if element_id != "pool-contamination_pairs":  # a table of pairs, not a plot
            assert "<svg" in body and "<path" in body, f"{element_id} has no plot"
        assert 'class="note"' not in body, f"{element_id}: {body[:300]}"
    assert summary.counts["figures"] == len(STUDENT_FIGURES) + 1 and summary.counts["notes_only"] == 0
    assert summary.table.to_pylist() == [{"student_id": STUDENT, "student_revision": NEW, "figures": 7}]
    # adaptive rows are measured against grading.adaptive.max_k (16 by default): what stopping early saved
    spent = sum(4 if number % 3 else 8 for number in range(21))  # tests/report_data.py: 21 problems
    assert (
        f"{spent} rollouts spent vs {21 * 16} at fixed K ({1 - spent / (21 * 16):.0%} saved)"
        in figures[f"{STUDENT}-rollouts_band"]
    )
    # the latest revision (by first_graded_at) is the one shown, and compared with the one before
    assert f"revision {NEW}" in html and "rev-a" in figures[f"{STUDENT}-revision_change"]


def test_a_rerun_is_byte_identical_and_ids_never_repeat(full_root: DataRoot, tmp_path: Path) -> None:
    first = build_picture_report(_config(), full_root, tmp_path / "a.html").path
    second = build_picture_report(_config(), full_root, tmp_path / "b.html").path
    assert first is not None and second is not None
    assert first.read_bytes() == second.read_bytes()
    ids = re.findall(r'\bid="([^"]+)"', first.read_text(encoding="utf-8"))
    assert len(ids) > 50 and len(ids) == len(set(ids)), "an id repeats across the inlined SVGs"


def test_no_external_resource_and_data_text_is_escaped(full_root: DataRoot, tmp_path: Path) -> None:
    html = Path(build_picture_report(_config(), full_root, tmp_path / "r.html").path).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page links an external resource"
    assert "<script" not in html.lower().replace("&lt;script", "")  # the injected question arrives as text
    assert "&lt;script&gt;alert(" in html and INJECTION not in html


def test_each_caption_query_reproduces_its_rows_through_the_catalog_file(full_root: DataRoot) -> None:
    """The query a caption shows is runnable as printed against `catalog.duckdb` (what `gradus sql` reads) and
    returns the rows the figure plotted."""
    import duckdb

    refresh_catalog(full_root)
    catalog = open_catalog(full_root)
    [scope] = student_scopes(catalog, _config())
    with duckdb.connect(str(full_root.catalog_path), read_only=True) as con:
        for key, draw in STUDENT_FIGURES.items():
            figure = draw(catalog, scope)
            for statement in filter(None, (s.strip() for s in figure.query.split(";"))):
                printed = con.sql(statement).fetchall()
                assert printed == catalog.con.sql(statement).fetchall() and printed, (key, statement)
    catalog.con.close()


def test_absent_tables_and_features_become_notes_not_crashes(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")  # grading only: no curriculum, skills, training, pool tables or 2nd revision
    root.write_table(
        "problems", to_table([{"problem_id": "p", "family": "arithmetic", "difficulty_knob": 1}], TABLES["problems"])
    )
    row = {"problem_id": "p", "student_id": STUDENT, "student_revision": "r", "family": "arithmetic", "n": 4, "k": 2,
           "n_timeout": 0, "n_error": 0, "pass_rate": 0.5, "post_mean": 0.5, "post_lo": 0.2, "post_hi": 0.8,
           "band": "learnable", "method": "fixed_k_v1"}  # fmt: skip
    root.write_table("difficulty", to_table([row], TABLES["difficulty"]), {"student": STUDENT})
    summary = build_picture_report(_config(), root)
    html = Path(summary.path).read_text(encoding="utf-8")
    figures = _figures(html)
    assert "<svg" in figures[f"{STUDENT}-pass_rates"] and "<svg" in figures[f"{STUDENT}-rollouts_band"]
    assert "skills are off" in figures[f"{STUDENT}-skills"]
    assert "No `shards` table" in figures[f"{STUDENT}-curriculum"]
    assert "trainer has not run" in figures[f"{STUDENT}-training"]
    assert "No `duplicates`, `contamination` table" in figures["pool-pool_counts"]
    assert summary.counts["notes_only"] >= 5
    assert Path(summary.path) == root.path / "reports" / "report.html"


def test_key_plot_markdown_embeds_a_png_with_its_query(full_root: DataRoot) -> None:
    text = key_plot_markdown(_config(), full_root, "curriculum")
    assert re.search(r"!\[[^\]]+\]\(data:image/png;base64,[A-Za-z0-9+/=]{2000,}\)", text)
    assert "```sql" in text and "from shards" in text
    missing = key_plot_markdown(ProjectConfig(student={"id": "nobody"}), full_root, "curriculum")
    assert "No graded rows for student `nobody`" in missing
