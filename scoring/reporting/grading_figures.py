"""The grading figures of one student: pass rates per source and family, the posterior against the difficulty knob,
rollouts spent per band against fixed K, and the per-family change between its last two graded revisions."""

from __future__ import annotations

from collections import defaultdict

from matplotlib.axes import Axes

from scoring.reporting.figures import Catalog, ReportFigure, Scope, absent, empty, literal
from scoring.reporting.plots import PALETTE, jitter, new_figure, short, styled

BAND_ORDER = ("too_hard", "learnable", "too_easy")
MAX_PANELS = 12  # families drawn as small multiples; more are listed in the note


def mean_of(values: list[float]) -> float:
    """The arithmetic mean of a non-empty list."""
    return sum(values) / len(values)


def _where(scope: Scope, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"{prefix}student_id = {literal(scope.student_id)} and {prefix}student_revision = {literal(scope.revision)}"


@styled
def pass_rate_distribution(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per source and family, each problem's pass rate (one dot per problem, a box over each group)."""
    key, title = "pass_rates", "Pass rate per source and family"
    caption = (
        "Look for families bunched at 0 or 1 (no learning signal there) and for sources much easier or harder "
        "than the rest; a dot is one problem."
    )
    query = (
        "select coalesce(p.source, '(no source)') as source, coalesce(d.family, p.family, '(none)') as family, "
        "d.problem_id, d.pass_rate\nfrom difficulty d left join (select problem_id, string_agg(distinct source, '+' "
        "order by source) as source, min(family) as family from problems group by problem_id) p using (problem_id)\n"
        f"where {_where(scope, 'd')} and d.n > 0\norder by source, family, d.problem_id"
    )
    if catalog.missing("difficulty", "problems"):
        return absent(key, title, caption, query, catalog.missing("difficulty", "problems"))
    groups: dict[str, list[float]] = defaultdict(list)
    for row in catalog.rows(query):
        groups[f"{row['source']} · {row['family']}"].append(float(row["pass_rate"]))
    if not groups:
        return empty(key, title, caption, query, "No graded problem (n > 0) for this revision.")
    labels = sorted(groups)
    figure = new_figure(7.0, 1.0 + 0.45 * len(labels))
    axes = figure.subplots()
    axes.boxplot([groups[label] for label in labels], orientation="horizontal", widths=0.5, showfliers=False)
    for index, label in enumerate(labels, start=1):
        values = groups[label]
        offsets = jitter(len(values), 0.18, seed=index)
        axes.scatter(values, [index + o for o in offsets], s=14, alpha=0.7, color=PALETTE[0], zorder=3)
    axes.set_yticks(range(1, len(labels) + 1), [f"{label} (n={len(groups[label])})" for label in labels])
    axes.set_xlim(-0.03, 1.03)
    axes.set_xlabel("pass rate (k / n rollouts correct)")
    axes.grid(axis="x", alpha=0.3)
    return ReportFigure(key, title, caption, query, plot=figure)


@styled
def posterior_vs_knob(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per family, the posterior mean pass rate with its 90% credible interval against the difficulty knob."""
    key, title = "posterior_knob", "Posterior pass rate (90% interval) against the difficulty knob"
    caption = (
        "A knob that works makes the pass rate fall as it rises; flat lines or wide overlapping intervals mean "
        "the knob does not separate difficulty for this student."
    )
    query = (
        "select coalesce(d.family, p.family) as family, p.difficulty_knob, d.problem_id, d.post_mean, d.post_lo, "
        "d.post_hi\nfrom difficulty d join (select problem_id, min(family) as family, min(difficulty_knob) as "
        f"difficulty_knob from problems group by problem_id) p using (problem_id)\nwhere {_where(scope, 'd')} and "
        "d.n > 0 and p.difficulty_knob is not null\norder by family, p.difficulty_knob, d.problem_id"
    )
    if catalog.missing("difficulty", "problems"):
        return absent(key, title, caption, query, catalog.missing("difficulty", "problems"))
    by_family: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in catalog.rows(query):
        by_family[str(row["family"])].append(row)
    if not by_family:
        return empty(key, title, caption, query, "No graded problem with a difficulty knob (imported sets have none).")
    families = sorted(by_family)[:MAX_PANELS]
    columns = min(3, len(families))
    lines = -(-len(families) // columns)
    figure = new_figure(2.6 * columns + 0.6, 2.3 * lines + 0.4)
    panels = figure.subplots(lines, columns, squeeze=False, sharey=True)
    for index, family in enumerate(families):
        _knob_panel(panels[index // columns][index % columns], family, by_family[family], seed=index)
    for index in range(len(families), lines * columns):
        panels[index // columns][index % columns].set_axis_off()
    figure.supxlabel("difficulty knob", fontsize=9)
    figure.supylabel("posterior mean pass rate", fontsize=9)
    note = "" if len(by_family) <= MAX_PANELS else f"First {MAX_PANELS} of {len(by_family)} families shown."
    return ReportFigure(key, title, caption, query, plot=figure, note=note)


def _knob_panel(axes: Axes, family: str, rows: list[dict[str, float]], seed: int) -> None:
    """One family: each problem's posterior mean and 90% interval at its (jittered) knob, and the mean per knob."""
    knobs = [float(r["difficulty_knob"]) for r in rows]
    x = [k + o for k, o in zip(knobs, jitter(len(rows), 0.15, seed=seed), strict=True)]
    means = [float(r["post_mean"]) for r in rows]
    errors = [
        [m - float(r["post_lo"]) for m, r in zip(means, rows, strict=True)],
        [float(r["post_hi"]) - m for m, r in zip(means, rows, strict=True)],
    ]
    axes.errorbar(x, means, yerr=errors, fmt="o", markersize=3, alpha=0.6, color=PALETTE[0], elinewidth=0.8)
    levels = sorted(set(knobs))
    per_level = [mean_of([m for m, k in zip(means, knobs, strict=True) if k == level]) for level in levels]
    axes.plot(levels, per_level, color=PALETTE[1], linewidth=1.5, label="mean per knob")
    axes.set_title(f"{family} ({len(rows)} problems)")
    axes.set_xticks(levels)
    axes.set_xlim(min(levels) - 0.5, max(levels) + 0.5)
    axes.set_ylim(-0.03, 1.03)
    axes.grid(alpha=0.3)


@styled
def rollouts_by_band(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Rollouts spent on each problem, per band, against what fixed K would have spent."""
    key, title = "rollouts_band", "Rollouts spent per problem, by band"
    caption = (
        "Adaptive grading stops early where the band is certain; the dashed line is the fixed K a problem gets "
        f"without it ({scope.fixed_k_source} = {scope.fixed_k}; fixed-K rows: their own K), so the gap below it "
        "is what adaptive grading saved."
    )
    query = (
        "select band, problem_id, n + n_timeout + n_error as rollouts, method\nfrom difficulty\n"
        f"where {_where(scope)}\norder by band, rollouts, problem_id"
    )
    if catalog.missing("difficulty"):
        return absent(key, title, caption, query, ["difficulty"])
    by_band: dict[str, list[int]] = defaultdict(list)
    rows = catalog.rows(query)
    for row in rows:
        by_band[str(row["band"])].append(int(row["rollouts"]))
    if not by_band:
        return empty(key, title, caption, query, "No difficulty rows for this revision.")
    bands = [b for b in BAND_ORDER if b in by_band] + sorted(set(by_band) - set(BAND_ORDER))
    spent = sum(sum(v) for v in by_band.values())
    # Fixed-K rows could not have stopped early: their own K is the reference, so they count as nothing saved.
    adaptive = [str(row["method"]).startswith("adaptive") for row in rows]
    k_ref = scope.fixed_k if any(adaptive) else max(max(v) for v in by_band.values())
    fixed = sum(scope.fixed_k if a else int(r["rollouts"]) for a, r in zip(adaptive, rows, strict=True))
    figure = new_figure(7.0, 3.2)
    axes = figure.subplots()
    for index, band in enumerate(bands):
        values = by_band[band]
        offsets = jitter(len(values), 0.2, seed=index)
        axes.scatter([index + o for o in offsets], values, s=16, alpha=0.7, color=PALETTE[index % len(PALETTE)])
    axes.axhline(k_ref, linestyle="--", color="0.3", label=f"fixed K = {k_ref}")
    axes.set_xticks(range(len(bands)), [f"{b}\n{len(by_band[b])} problems, {sum(by_band[b])} rollouts" for b in bands])
    axes.set_ylabel("rollouts spent on the problem")
    axes.set_ylim(0, max(k_ref, max(max(v) for v in by_band.values())) * 1.15)
    saved = 1 - spent / fixed if fixed else 0.0
    axes.set_title(f"{spent} rollouts spent vs {fixed} at fixed K ({saved:.0%} saved)")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    return ReportFigure(key, title, caption, query, plot=figure)


@styled
def revision_change(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per family, the mean pass rate before and after the student's last revision change."""
    key, title = "revision_change", "Per-family pass rate: previous revision → latest"
    caption = (
        "Arrows pointing right are families the new checkpoint improved on; a family moving left regressed "
        "(both revisions graded on the same problems, sampling and verifier)."
    )
    query = (
        "select family, before_revision, after_revision, problems, pass_rate_before, pass_rate_after, mean_delta\n"
        f"from difficulty_diff_family\nwhere student_id = {literal(scope.student_id)} and after_revision = "
        f"{literal(scope.revision)}\norder by family"
    )
    if catalog.missing("difficulty_diff_family"):
        return absent(key, title, caption, query, ["difficulty_diff_family"], " (it needs `student_revisions`)")
    rows = catalog.rows(query)
    if not rows:
        return empty(key, title, caption, query, "Only one revision of this student is graded: nothing to compare.")
    rows.sort(key=lambda r: (float(r["mean_delta"]), str(r["family"])))
    figure = new_figure(7.0, 1.0 + 0.4 * len(rows))
    axes = figure.subplots()
    for index, row in enumerate(rows):
        before, after = float(row["pass_rate_before"]), float(row["pass_rate_after"])
        colour = PALETTE[2] if after >= before else PALETTE[3]
        axes.annotate("", xy=(after, index), xytext=(before, index), arrowprops={"arrowstyle": "->", "color": colour})
        axes.scatter([before], [index], color="0.6", s=18, zorder=3)
        axes.scatter([after], [index], color=colour, s=18, zorder=3)
    axes.set_yticks(
        range(len(rows)), [f"{r['family']} ({r['problems']}, Δ {float(r['mean_delta']):+.2f})" for r in rows]
    )
    axes.set_xlim(-0.03, 1.03)
    axes.set_xlabel(
        f"mean pass rate: {short(str(rows[0]['before_revision']))} (grey) → {short(str(rows[0]['after_revision']))}"
    )
    axes.grid(axis="x", alpha=0.3)
    return ReportFigure(key, title, caption, query, plot=figure)
