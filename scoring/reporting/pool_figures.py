"""The pool (shared by every student): how many problems dedup dropped and decontamination flagged, and a few of
the matched pairs side by side so a reader can judge the matches."""

from __future__ import annotations

from scoring.reporting.figures import Catalog, Pair, ReportFigure, absent
from scoring.reporting.plots import PALETTE, new_figure, styled

PAIRS_SHOWN = 4
TEXT_CHARS = 400  # a question cut here in the side-by-side table: enough to judge a match


def _cut(text: object) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= TEXT_CHARS else value[: TEXT_CHARS - 1] + "…"


COUNTS_QUERY = """select 'pool' as stage, 'all sources' as detail, count(distinct problem_id) as problems from problems
union all
select 'duplicate', method, count(distinct problem_id) from duplicates group by method
union all
select 'contaminated', benchmark, count(distinct problem_id) from contamination group by benchmark
order by stage, detail"""
DUPLICATE_PAIRS_QUERY = f"""select d.method, d.similarity, a.question as dropped, b.question as kept
from duplicates d
join (select problem_id, min(question) as question from problems group by problem_id) a on a.problem_id = d.problem_id
join (select problem_id, min(question) as question from problems group by problem_id) b on b.problem_id = d.kept_id
order by d.similarity desc, d.problem_id
limit {PAIRS_SHOWN}"""
CONTAMINATION_PAIRS_QUERY = f"""select c.benchmark, c.method, c.score, p.question, c.matched_text
from contamination c
join (select problem_id, min(question) as question from problems group by problem_id) p using (problem_id)
order by c.score desc, c.problem_id, c.benchmark, c.benchmark_item_id
limit {PAIRS_SHOWN}"""


@styled
def dedup_contamination(catalog: Catalog) -> tuple[ReportFigure, ReportFigure]:
    """The counts figure (pool size, duplicates per method, contaminated per benchmark) with a few duplicate
    pairs, and a second entry holding a few contamination pairs."""
    key, title = "pool_counts", "Dedup and contamination"
    caption = (
        "Dropped duplicates and flagged problems never get rollouts; read the pairs below to judge whether the "
        "matches are real (a benchmark leak) or noise (a threshold set too low)."
    )
    query = f"{COUNTS_QUERY};\n{DUPLICATE_PAIRS_QUERY};"
    pair_key, pair_title = "contamination_pairs", "Contaminated problems next to the benchmark item they match"
    pair_caption = "The highest-scoring matches: the same question in other words is a real leak."
    needed = catalog.missing("problems", "duplicates", "contamination")
    if needed:
        why = " (materialize `duplicates` and `contamination`)"
        return (
            absent(key, title, caption, query, needed, why),
            absent(pair_key, pair_title, pair_caption, CONTAMINATION_PAIRS_QUERY, needed, why),
        )
    counts = catalog.rows(COUNTS_QUERY)
    figure = new_figure(7.0, 0.9 + 0.35 * len(counts))
    axes = figure.subplots()
    colours = {"pool": PALETTE[0], "duplicate": PALETTE[1], "contaminated": PALETTE[3]}
    labels = [f"{r['stage']}: {r['detail']}" for r in counts]
    values = [int(r["problems"]) for r in counts]
    bars = axes.barh(range(len(counts)), values, color=[colours.get(str(r["stage"]), "0.5") for r in counts])
    axes.bar_label(bars, padding=3, fontsize=8)
    axes.set_yticks(range(len(counts)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("problems")
    axes.set_xlim(0, max(values + [1]) * 1.15)
    axes.grid(axis="x", alpha=0.3)
    duplicates = tuple(
        Pair(f"{r['method']} {float(r['similarity']):.2f}", _cut(r["dropped"]), _cut(r["kept"]))
        for r in catalog.rows(DUPLICATE_PAIRS_QUERY)
    )
    contaminated = tuple(
        Pair(f"{r['benchmark']} · {r['method']} {float(r['score']):.2f}", _cut(r["question"]), _cut(r["matched_text"]))
        for r in catalog.rows(CONTAMINATION_PAIRS_QUERY)
    )
    counts_figure = ReportFigure(
        key, title, caption, query, plot=figure, pairs=duplicates, pair_headers=("dropped", "kept in its place"),
        note="" if duplicates else "No near-duplicate pairs: nothing was dropped.",
    )  # fmt: skip
    pairs_figure = ReportFigure(
        pair_key, pair_title, pair_caption, CONTAMINATION_PAIRS_QUERY, pairs=contaminated,
        pair_headers=("problem", "benchmark item"),
        note="" if contaminated else "No problem matched a benchmark item.",
    )  # fmt: skip
    return counts_figure, pairs_figure
