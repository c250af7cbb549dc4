"""Metadata for synthesis and skill assets: the stage's counts, funnel, reject reasons, preview and cost."""

from __future__ import annotations

import dagster as dg

from assets.metadata import counts_metadata
from scoring.stages.pipeline import StageSummary

_MARKDOWN_FIGURES = {"funnel_md": "funnel", "reject_reasons_md": "reject_reasons", "preview_md": "preview"}


def stage_metadata(summary: StageSummary, *, query: str) -> dict[str, dg.MetadataValue]:
    """Row count, counts, markdown figures (funnel, reject reasons, preview), cost figures and the DuckDB query."""
    metadata: dict[str, dg.MetadataValue] = {"dagster/row_count": dg.MetadataValue.int(summary.table.num_rows)}
    metadata |= counts_metadata(summary.counts)
    plain = {k: v for k, v in summary.figures.items() if k not in _MARKDOWN_FIGURES}
    metadata |= counts_metadata(plain)
    for key, label in _MARKDOWN_FIGURES.items():
        if summary.figures.get(key):
            metadata[label] = dg.MetadataValue.md(str(summary.figures[key]))
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
