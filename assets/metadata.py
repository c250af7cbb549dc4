"""Metadata helpers shared by the assets: histograms, previews and the DuckDB query to reproduce a table."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pyarrow as pa


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
    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text.replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = table.select(list(columns)).slice(0, rows).to_pylist()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in head]
    return "\n".join(lines)


def table_metadata(table: pa.Table, *, columns: Sequence[str], query: str) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(table.num_rows),
        "preview": dg.MetadataValue.md(preview_markdown(table, columns)),
        "duckdb_query": dg.MetadataValue.md(f"```sql\n{query}\n```"),
    }


def counts_metadata(counts: dict[str, int | float | str]) -> dict[str, dg.MetadataValue]:
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
