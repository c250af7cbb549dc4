"""`gradus sql` and `gradus history`: query the catalog of a data root, at the latest or an earlier table version,
with the DuckDB that Gradus itself installs (no separate CLI to match versions with)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from engines.errors import ConfigError
from scoring.catalog import connect_catalog, refresh_catalog
from scoring.delta_tables import parquet_list
from scoring.schemas import schema_for
from scoring.storage import DataRoot

_AS_OF = re.compile(r"^(?P<table>[a-z_]+)=(?P<version>\d+)$")


def parse_as_of(items: Sequence[str]) -> dict[str, int]:
    """`table=version` pairs (e.g. `difficulty=3`) → {table: version}; a clear error names a malformed one."""
    parsed: dict[str, int] = {}
    for item in items:
        match = _AS_OF.match(item.strip())
        if not match:
            raise ConfigError(f"--as-of {item!r}: expected <table>=<version>, e.g. difficulty=3")
        schema_for(match["table"])  # an unknown table name fails here, with a suggestion
        parsed[match["table"]] = int(match["version"])
    return parsed


def run_query(root: DataRoot, query: str, as_of: dict[str, int] | None = None) -> duckdb.DuckDBPyRelation | None:
    """Run `query` against the catalog; each table in `as_of` reads as it was at that version (a temporary
    view over that version's files shadows the catalog's). Returns the result relation (None for statements)."""
    if not root.catalog_path.exists():
        if not root.tables_dir.is_dir():
            raise ConfigError(f"{root.path} has no tables yet: run `gradus run` first")
        refresh_catalog(root)
    con = connect_catalog(root)
    for table, version in (as_of or {}).items():
        files = root.table_files(table, version=version)
        if not files:
            raise ConfigError(f"table {table!r} has no rows at version {version} (see `gradus history {table}`)")
        con.execute(
            f"create temp view {table} as select * from read_parquet({parquet_list(files)}, "
            "hive_partitioning = true, union_by_name = true)"
        )
    return con.sql(query)


def history_rows(root: DataRoot, table: str) -> list[tuple[int, str, str, str]]:
    """(version, UTC time, operation, what it did) for each commit of `table`, newest first."""
    rows = []
    for entry in root.table_history(table):
        stamp = datetime.fromtimestamp(int(entry["timestamp_ms"] or 0) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        metrics = entry["metrics"] if isinstance(entry["metrics"], dict) else {}
        parameters = entry["parameters"] if isinstance(entry["parameters"], dict) else {}
        detail = []
        if parameters.get("predicate"):
            detail.append(f"where {parameters['predicate']}")
        for name in ("num_added_rows", "num_added_files", "num_removed_files", "numFilesAdded", "numFilesRemoved"):
            if name in metrics:
                detail.append(f"{name}={metrics[name]}")
        rows.append((int(entry["version"] or 0), stamp, str(entry["operation"]), ", ".join(detail)))
    return rows
