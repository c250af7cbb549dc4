"""What a stage hands back, and the one copy of each helper that turns a stage's work into a report.

A stage returns a `StageSummary`: its main table, counts, `figures` (numbers and short strings) and named
`markdown` blocks (`funnel`, `reject_reasons`, `preview`, ...), which the assets render as Dagster markdown
metadata. The helpers here build those blocks and measure what a stage's engines spent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import pyarrow as pa

from engines import Engine, EngineStats
from scoring.config import ProjectConfig
from scoring.stages.synthesis_log import SynthesisRecord
from synthesis.problem import Problem

CELL_CHARS = 160  # a markdown cell longer than this is cut: previews are for glancing, the tables hold the text
TOP_REASONS = 20  # reject reasons listed by name; the rest are summed into one row
PREVIEW_ROWS = 5


@dataclass(slots=True)
class StageSummary:
    """What a stage wrote: its main table, counts, figures (numbers and short strings) and markdown blocks."""

    table: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    figures: dict[str, float | int | str] = field(default_factory=dict)
    path: Path | None = None
    markdown: dict[str, str] = field(default_factory=dict, kw_only=True)


def student_partition(config: ProjectConfig) -> dict[str, str]:
    """The partition of the student's tables (`rollouts`, `difficulty`, ...)."""
    return {"student": config.student.id}


class CostMeter:
    """What a stage's engines spent, and how long the stage took.

    Engine stats are cumulative over an engine's life and roles often share one engine, so the meter snapshots
    each distinct engine when it starts watching it and reports the summed difference. Engines are watched only
    once a stage is about to call them: asking `EngineRoles` for a role starts its model.
    """

    def __init__(self, *engines: Engine) -> None:
        self._started = time.perf_counter()
        self._engines: list[Engine] = []
        self._before: list[EngineStats] = []
        self.watch(*engines)

    def watch(self, *engines: Engine) -> None:
        """Count these engines' work from now on (an engine already watched keeps its first snapshot)."""
        for engine in engines:
            if all(seen is not engine for seen in self._engines):
                self._engines.append(engine)
                self._before.append(replace(engine.stats))

    def spent(self) -> dict[str, float | int]:
        """The watched engines' work since their snapshots, summed, as `EngineStats.as_dict()`; {} when the
        stage watched no engine (it made no model call, so it reports no cost)."""
        if not self._engines:
            return {}
        total = EngineStats()
        for engine, then in zip(self._engines, self._before, strict=True):
            for f in fields(EngineStats):
                spent = getattr(engine.stats, f.name) - getattr(then, f.name)
                setattr(total, f.name, getattr(total, f.name) + spent)
        return total.as_dict()

    def seconds(self) -> float:
        """Wall-clock seconds since the meter was made."""
        return round(time.perf_counter() - self._started, 3)

    def figures(self, *, kept: int | None = None) -> dict[str, float | int]:
        """`spent()` and `seconds`; given the number of `kept` problems, also the engines' prompt and completion
        tokens per kept problem (`tokens_per_kept_problem`)."""
        spent = self.spent()
        if kept is not None:
            tokens = int(spent.get("prompt_tokens", 0)) + int(spent.get("completion_tokens", 0))
            spent["tokens_per_kept_problem"] = tokens_per_kept(tokens, kept)
        return spent | {"seconds": self.seconds()}


def tokens_per_kept(tokens: int | float, kept: int) -> float:
    """Tokens spent per accepted item (0.0 when nothing was kept)."""
    return round(tokens / kept, 1) if kept else 0.0


def _cell(value: object) -> str:
    """One markdown table cell: floats to 3 decimals, lists joined, whitespace collapsed, `|` escaped, cut at
    `CELL_CHARS` characters."""
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.3f}"
    elif isinstance(value, list | tuple):
        text = ", ".join(map(str, value))
    else:
        text = str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """`rows` as a markdown table of `columns` (a missing value is an empty cell)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def reasons_markdown(reasons: Counter[str]) -> str:
    """Reasons with their counts, most frequent first, as a markdown table; past `TOP_REASONS` the rest are
    summed into one row, so the table stays readable and the total stays right."""
    ranked = reasons.most_common()
    rows: list[Mapping[str, object]] = [{"reason": r, "count": n} for r, n in ranked[:TOP_REASONS]]
    if rest := ranked[TOP_REASONS:]:
        rows.append({"reason": f"({len(rest)} other reasons)", "count": sum(n for _, n in rest)})
    return markdown_table(rows, ("reason", "count"))


def funnel_markdown(record: SynthesisRecord) -> str:
    """A synthesis run's per-filter counts (in, kept, rejected), in first-seen order, as a markdown table."""
    rows = [{"stage": stage} | counts for stage, counts in record.funnel().items()]
    return markdown_table(rows, ("stage", "in", "kept", "rejected"))


def problems_preview(problems: Sequence[Problem], *, extra: Sequence[str] = ()) -> str:
    """The first accepted problems as a markdown table: question, answer and the `extra` metadata fields."""
    rows = []
    for problem in problems[:PREVIEW_ROWS]:
        meta = json.loads(problem.metadata or "{}")
        rows.append({"question": problem.question, "answer": problem.answer} | {k: meta.get(k) for k in extra})
    return markdown_table(rows, ("question", "answer", *extra))


def synthesis_markdown(record: SynthesisRecord, preview: str) -> dict[str, str]:
    """The markdown blocks every synthesis stage reports: its funnel, reject reasons and a preview."""
    return {
        "funnel": funnel_markdown(record),
        "reject_reasons": reasons_markdown(record.reject_reasons()),
        "preview": preview,
    }
