"""The report page: every student's figures and the pool's, rendered into one self-contained HTML document (inline
CSS and SVG, no script, no external resource), byte-identical for the same data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from scoring.reporting.figures import Catalog, Pair, ReportFigure, Scope
from scoring.reporting.grading_figures import (
    pass_rate_distribution,
    posterior_vs_knob,
    revision_change,
    rollouts_by_band,
)
from scoring.reporting.plots import svg_markup
from scoring.reporting.pool_figures import dedup_contamination
from scoring.reporting.run_figures import curriculum_positions, skill_profile, training_curves

# A student's figures, in page order (the keys are what `figure_for` and the browser test name).
STUDENT_FIGURES: dict[str, Callable[[Catalog, Scope], ReportFigure]] = {
    "pass_rates": pass_rate_distribution,
    "posterior_knob": posterior_vs_knob,
    "rollouts_band": rollouts_by_band,
    "curriculum": curriculum_positions,
    "skills": skill_profile,
    "training": training_curves,
    "revision_change": revision_change,
}
POOL_FIGURES = ("pool_counts", "contamination_pairs")

_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,  # every text from the data (questions, benchmark items, names) is escaped
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
).get_template("report.html.jinja")


@dataclass(frozen=True, slots=True)
class RenderedFigure:
    """A figure as the template shows it: its plot already turned into inline SVG markup ('' when none)."""

    key: str
    title: str
    caption: str
    query: str
    svg: str
    note: str
    pairs: tuple[Pair, ...]
    pair_headers: tuple[str, str]


@dataclass(frozen=True, slots=True)
class StudentSection:
    scope: Scope
    figures: list[RenderedFigure]


def figure_for(catalog: Catalog, scope: Scope, key: str) -> ReportFigure:
    """One of a student's figures by key (what the Dagster assets attach as their key plot)."""
    return STUDENT_FIGURES[key](catalog, scope)


def _rendered(figure: ReportFigure, owner: str) -> RenderedFigure:
    svg = svg_markup(figure.plot, f"{owner}-{figure.key}") if figure.plot is not None else ""
    return RenderedFigure(
        figure.key, figure.title, figure.caption, figure.query, svg, figure.note, figure.pairs, figure.pair_headers
    )


def render_report(catalog: Catalog, scopes: Sequence[Scope], root_label: str) -> tuple[str, dict[str, int]]:
    """The HTML page for these students (in the given order), and counts: figures drawn and figures with only a
    note (a table absent, a feature off)."""
    pool = [_rendered(figure, "pool") for figure in dedup_contamination(catalog)]
    sections = []
    for scope in scopes:
        figures = [_rendered(draw(catalog, scope), scope.student_id) for draw in STUDENT_FIGURES.values()]
        sections.append(StudentSection(scope, figures))
    every = pool + [figure for section in sections for figure in section.figures]
    counts = {
        "students": len(sections),
        "figures": sum(1 for f in every if f.svg),
        "tables_of_pairs": sum(1 for f in every if f.pairs),
        "notes_only": sum(1 for f in every if not f.svg and not f.pairs),
    }
    html = _TEMPLATE.render(root=root_label, pool=pool, students=sections)
    return html, counts
