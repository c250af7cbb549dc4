"""`scoring/stages/report.py`: the one copy of the stage report helpers — markdown tables, reject reasons, the
synthesis funnel and preview — and the engine-cost meter."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

from engines import EngineStats
from scoring.schemas import PROBLEMS, to_table
from scoring.stages.report import (
    CELL_CHARS,
    PREVIEW_ROWS,
    TOP_REASONS,
    CostMeter,
    StageSummary,
    funnel_markdown,
    markdown_table,
    problems_preview,
    reasons_markdown,
    synthesis_markdown,
)
from scoring.stages.synthesis_log import SynthesisRecord
from synthesis.problem import Problem


def _rows(markdown: str) -> list[list[str]]:
    """The body rows of a markdown table, split into cells (escaped pipes stay inside their cell)."""
    rows = []
    for line in markdown.splitlines()[2:]:
        cells = line.strip("|").replace("\\|", "\0").split("|")
        rows.append([c.strip().replace("\0", "\\|") for c in cells])
    return rows


def test_markdown_table_cells_are_one_line_escaped_and_cut() -> None:
    rows = [
        {"a": "x | y\nz", "b": 0.123456, "c": ["p", "q"]},
        {"a": "w" * (CELL_CHARS + 40), "b": None},
    ]
    table = markdown_table(rows, ["a", "b", "c"])
    lines = table.splitlines()
    assert lines[:2] == ["| a | b | c |", "|---|---|---|"]
    assert len(lines) == 4, "one line per row: newlines inside a cell are collapsed"
    first, second = _rows(table)
    assert first == ["x \\| y z", "0.123", "p, q"]
    assert len(second[0]) == CELL_CHARS and second[0].endswith("…")
    assert second[1:] == ["", ""], "None and missing values are empty cells"


def test_reasons_are_ranked_and_the_tail_is_summed_not_dropped() -> None:
    reasons = Counter({f"reason {i}": i + 1 for i in range(TOP_REASONS + 5)})
    rows = _rows(reasons_markdown(reasons))
    assert len(rows) == TOP_REASONS + 1
    counts = [int(n) for _, n in rows]
    assert counts[:TOP_REASONS] == sorted(counts[:TOP_REASONS], reverse=True)
    assert rows[0] == [f"reason {TOP_REASONS + 4}", str(TOP_REASONS + 5)]
    assert rows[-1][0] == "(5 other reasons)" and sum(counts) == sum(reasons.values())
    assert _rows(reasons_markdown(Counter())) == []


def test_funnel_and_preview_of_a_synthesis_record() -> None:
    record = SynthesisRecord("demo")
    record.decide("parse", "a", kept=True)
    record.decide("parse", "b", kept=False, reason="empty completion")
    record.decide("agreement", "a", kept=True)
    problems = [
        Problem.create(
            source="demo",
            family="demo",
            question=f"What is {i} | {i}?",
            answer=str(i),
            source_ref=f"demo:{i}",
            metadata={"k": i},
        )  # fmt: skip
        for i in range(PREVIEW_ROWS + 2)
    ]
    for problem in problems:
        record.accept(problem)
    assert _rows(funnel_markdown(record)) == [["parse", "2", "1", "1"], ["agreement", "1", "1", "0"]]
    preview = _rows(problems_preview(problems, extra=("k", "missing")))
    assert len(preview) == PREVIEW_ROWS
    assert preview[0] == ["What is 0 \\| 0?", "0", "0", ""]
    blocks = synthesis_markdown(record, "| preview |")
    assert set(blocks) == {"funnel", "reject_reasons", "preview"}
    assert _rows(blocks["reject_reasons"]) == [["parse: empty completion", "1"]]


def _engine() -> Any:
    return SimpleNamespace(stats=EngineStats())  # CostMeter reads only `stats`


def test_cost_meter_counts_each_engine_once_from_when_it_is_watched() -> None:
    shared, other = _engine(), _engine()
    shared.stats.model_calls = 5  # before the stage: not its cost
    meter = CostMeter(shared, shared)
    assert meter.spent() == EngineStats().as_dict()
    shared.stats.model_calls += 2
    shared.stats.prompt_tokens += 30
    other.stats.cache_hits += 4  # before it is watched: not counted
    meter.watch(other, shared)
    other.stats.cache_hits += 1
    other.stats.completion_tokens += 10
    spent = meter.spent()
    assert (spent["model_calls"], spent["cache_hits"], spent["prompt_tokens"]) == (2, 1, 30)
    assert spent["cache_hit_rate"] == round(1 / 3, 4)
    figures = meter.figures(kept=4)
    assert figures["tokens_per_kept_problem"] == 10.0 and figures["seconds"] >= 0
    assert CostMeter().figures(kept=0)["tokens_per_kept_problem"] == 0.0


def test_no_watched_engine_reports_no_cost() -> None:
    figures = CostMeter().figures()
    assert list(figures) == ["seconds"], "a stage that called no model reports only its time"


def test_a_summary_keeps_markdown_apart_from_figures() -> None:
    table = to_table([], PROBLEMS)
    summary = StageSummary(table, {"kept": 0}, {"status": "ok"}, None, markdown={"funnel": "| stage |"})
    assert summary.markdown == {"funnel": "| stage |"} and summary.figures == {"status": "ok"}
    assert StageSummary(table).markdown == {}
    assert json.dumps(summary.figures)  # figures stay plain numbers and short strings
