"""What every report figure is made of: a title, a one-line caption saying what to look for, the DuckDB query that
reproduces it (the very text the figure function ran, so `gradus sql` on it gives the plotted rows), and either a
plot or a note saying why there is none (a table not written, a feature switched off)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
from matplotlib.figure import Figure


@dataclass(frozen=True, slots=True)
class Pair:
    """Two texts shown side by side (a dropped near-duplicate and the problem kept; a problem and the benchmark
    item it matches), with what links them."""

    link: str
    left: str
    right: str


@dataclass(frozen=True, slots=True)
class ReportFigure:
    """One figure of the report; `plot` is None when there is nothing to draw, and `note` then says why."""

    key: str
    title: str
    caption: str
    query: str
    plot: Figure | None = None
    note: str = ""
    pairs: tuple[Pair, ...] = ()
    pair_headers: tuple[str, str] = ("", "")


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a student's figures read: the student, the revision graded last, and the fixed K that adaptive
    grading is measured against (with the config key it came from)."""

    student_id: str
    revision: str
    fixed_k: int
    fixed_k_source: str = "grading.adaptive.max_k"


@dataclass(slots=True)
class Catalog:
    """A DuckDB connection holding the catalog's views, and their names (a table never written has no view)."""

    con: duckdb.DuckDBPyConnection
    views: frozenset[str] = field(default_factory=frozenset)

    def missing(self, *views: str) -> list[str]:
        """The views among `views` that this catalog lacks."""
        return [view for view in views if view not in self.views]

    def rows(self, query: str) -> list[dict[str, Any]]:
        """The query's rows as dicts (column name → value)."""
        result = self.con.sql(query)
        names = list(result.columns)
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def literal(value: str) -> str:
    """`value` as a SQL string literal (quotes doubled): the queries shown in captions are runnable as printed."""
    return "'" + value.replace("'", "''") + "'"


def absent(key: str, title: str, caption: str, query: str, tables: list[str], why: str = "") -> ReportFigure:
    """A figure whose tables were never written: the note names them and, when given, how to produce them."""
    names = ", ".join(f"`{table}`" for table in tables)
    return ReportFigure(key, title, caption, query, note=f"No {names} table in this data root{why}.")


def empty(key: str, title: str, caption: str, query: str, why: str) -> ReportFigure:
    """A figure whose query returned no rows for this student: the note says what that means."""
    return ReportFigure(key, title, caption, query, note=why)
