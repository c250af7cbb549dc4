"""Metadata helpers shared by the assets: histograms, previews, a stage summary's counts, figures and markdown
blocks, and the DuckDB query to reproduce a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import pyarrow as pa

from scoring.stages.report import StageSummary


def histogram_markdown(values: Sequence[float], *, bins: int = 5, label: str = "pass rate") -> str:
    """A markdown table counting `values` in equal-width bins over [0, 1]."""
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, int(value * bins)))] += 1
    lines = [f"| {label} | problems |", "|---|---|"]
    for index, count in enumerate(counts):
        lo, hi = index / bins, (index + 1) / bins
        lines.append(f"| {lo:.1f}–{hi:.1f}{']' if index == bins - 1 else ')'} | {count} {'█' * count} |")
    return "\n".join(lines)


def preview_markdown(table: pa.Table, columns: Sequence[str], rows: int = 5, width: int = 60) -> str:
    """The first `rows` rows of `columns` as a markdown table, cells cut at `width` characters."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text.replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = table.select(list(columns)).slice(0, rows).to_pylist()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in head]
    return "\n".join(lines)


def table_metadata(
    table: pa.Table, *, columns: Sequence[str], query: str, rows: int | None = None
) -> dict[str, dg.MetadataValue]:
    """Row count (`rows` when `table` is only a preview), a preview of `columns` and the DuckDB query that
    reproduces the table."""
    return {
        "dagster/row_count": dg.MetadataValue.int(table.num_rows if rows is None else rows),
        "preview": dg.MetadataValue.md(preview_markdown(table, columns)),
        "duckdb_query": dg.MetadataValue.md(f"```sql\n{query}\n```"),
    }


def counts_metadata(counts: Mapping[str, int | float | str]) -> dict[str, dg.MetadataValue]:
    """Each count or figure as typed metadata: text for strings (and booleans), int, else float."""
    out: dict[str, dg.MetadataValue] = {}
    for key, value in counts.items():
        if isinstance(value, bool | str):
            out[key] = dg.MetadataValue.text(str(value))
        elif isinstance(value, int):
            out[key] = dg.MetadataValue.int(value)
        else:
            out[key] = dg.MetadataValue.float(float(value))
    return out


def per_group_markdown(table: pa.Table, by: str, value: str, *, label: str | None = None) -> str:
    """A markdown table with, per value of `by`: rows, and the mean, min and max of `value`."""
    groups: dict[str, list[float]] = {}
    for key, number in zip(table.column(by).to_pylist(), table.column(value).to_pylist(), strict=True):
        if number is not None:
            groups.setdefault(str(key), []).append(float(number))
    name = label or value
    lines = [f"| {by} | rows | mean {name} | min | max |", "|---|---:|---:|---:|---:|"]
    for key, numbers in sorted(groups.items()):
        mean = sum(numbers) / len(numbers)
        lines.append(f"| {key} | {len(numbers)} | {mean:.3f} | {min(numbers):.3f} | {max(numbers):.3f} |")
    return "\n".join(lines)


def markdown_metadata(blocks: Mapping[str, str]) -> dict[str, dg.MetadataValue]:
    """A stage's named markdown blocks (`funnel`, `reject_reasons`, `preview`, ...) as markdown metadata under
    their own names; empty blocks are left out."""
    return {name: dg.MetadataValue.md(text) for name, text in blocks.items() if text}


def stage_metadata(summary: StageSummary, *, query: str) -> dict[str, dg.MetadataValue]:
    """Row count, counts, figures (cost, status), markdown blocks (funnel, reject reasons, preview), the DuckDB
    query and the table's path: what a synthesis or skill asset reports."""
    metadata: dict[str, dg.MetadataValue] = {"dagster/row_count": dg.MetadataValue.int(summary.table.num_rows)}
    metadata |= counts_metadata(summary.counts)
    metadata |= counts_metadata(summary.figures)
    metadata |= markdown_metadata(summary.markdown)
    metadata["duckdb_query"] = dg.MetadataValue.md(f"```sql\n{query}\n```")
    if summary.path is not None:
        metadata["path"] = dg.MetadataValue.path(str(summary.path))
    return metadata


def disabled_metadata(section: str) -> dict[str, dg.MetadataValue]:
    """What a switched-off method reports: nothing ran, and how to switch it on."""
    return {
        "enabled": dg.MetadataValue.bool(False),
        "note": dg.MetadataValue.text(f"off: set {section}.enabled: true in gradus.yaml (no model was started)"),
    }
