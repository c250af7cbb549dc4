"""The data root: every table as Parquet under one directory, written atomically, with a DuckDB catalog.

Layout (see `../shared/design.md`):
    <root>/tables/<table>/[<key>=<value>/]data.parquet
    <root>/shards/<student>/<strategy>/shard-00000.parquet + manifest.json
    <root>/cache/completions.sqlite
    <root>/models/
    <root>/catalog.duckdb      one view per table, refreshed at the end of each run
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engines.errors import ConfigError
from scoring.schemas import TABLES, schema_for

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(value: str, what: str) -> str:
    """A name used as a path component: letters, digits, '.', '_', '-' only — no '..', no '/'."""
    if not _SAFE_NAME.match(value) or ".." in value:
        raise ConfigError(
            f"{what} {value!r} is not a safe name: use letters, digits, '.', '_' and '-' (no '/' or '..')"
        )
    return value


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Write to a temporary name beside `path`, fsync, then rename over it: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class DataRoot:
    """Paths and table I/O under one directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    @property
    def tables_dir(self) -> Path:
        return self.path / "tables"

    @property
    def shards_dir(self) -> Path:
        return self.path / "shards"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @property
    def cache_path(self) -> Path:
        return self.path / "cache" / "completions.sqlite"

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.duckdb"

    def table_path(self, table: str, partition: dict[str, str] | None = None) -> Path:
        schema_for(table)
        directory = self.tables_dir / table
        for key, value in (partition or {}).items():
            directory = directory / f"{safe_name(key, 'partition key')}={safe_name(value, key)}"
        return directory / "data.parquet"

    def write_table(self, table: str, data: pa.Table, partition: dict[str, str] | None = None) -> Path:
        """Cast `data` to the table's declared schema and publish it atomically."""
        return write_parquet_atomic(
            data.select(schema_for(table).names).cast(schema_for(table)), self.table_path(table, partition)
        )

    def read_table(self, table: str, partition: dict[str, str] | None = None) -> pa.Table:
        """The stored table, or an empty one of the declared schema when nothing was written yet."""
        path = self.table_path(table, partition)
        schema = schema_for(table)
        if not path.exists():
            return schema.empty_table()
        stored = pq.read_table(path)
        # Files written before a column was added get it as nulls, so old data keeps loading.
        for field in schema:
            if field.name not in stored.column_names:
                stored = stored.append_column(field, pa.nulls(stored.num_rows, field.type))
        return stored.select(schema.names).cast(schema)

    def upsert_table(
        self, table: str, new: pa.Table, key: tuple[str, ...], partition: dict[str, str] | None = None
    ) -> pa.Table:
        """Add rows whose key is not stored yet; rows already stored win, so reruns never duplicate evidence."""
        schema = schema_for(table)
        existing = self.read_table(table, partition)
        new = new.select(schema.names).cast(schema)
        if existing.num_rows:
            stored = set(zip(*(existing.column(k).to_pylist() for k in key), strict=True))
            fresh = [tuple(row) not in stored for row in zip(*(new.column(k).to_pylist() for k in key), strict=True)]
            new = new.filter(pa.array(fresh, type=pa.bool_()))
        merged = pa.concat_tables([existing, new]) if existing.num_rows else new
        merged = merged.sort_by([(k, "ascending") for k in key])
        self.write_table(table, merged, partition)
        return merged

    def refresh_catalog(self, attempts: int = 5) -> list[str]:
        """(Re)create one DuckDB view per stored table, plus `shards` over all curriculum shards."""
        views = []
        for attempt in range(attempts):
            try:
                with duckdb.connect(str(self.catalog_path)) as con:
                    for table in TABLES:
                        directory = self.tables_dir / table
                        if not any(directory.rglob("data.parquet")):
                            continue
                        glob = (directory / "**" / "data.parquet").as_posix()
                        con.execute(
                            f"create or replace view {table} as select * from read_parquet("
                            f"'{_sql_str(glob)}', hive_partitioning = true, union_by_name = true)"
                        )
                        views.append(table)
                    if "verdict_audit" in views:
                        con.execute(DISAGREEMENTS_VIEW)
                        views.append("disagreements")
                    if any(self.shards_dir.glob("*/*/shard-*.parquet")):
                        glob = (self.shards_dir / "*" / "*" / "shard-*.parquet").as_posix()
                        con.execute(
                            "create or replace view shards as select * from read_parquet("
                            f"'{_sql_str(glob)}', filename = true, union_by_name = true)"
                        )
                        views.append("shards")
                return views
            except duckdb.IOException:
                # Another process (a user's DuckDB shell, a concurrent run) holds the write lock: wait, retry.
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
        return views


DISAGREEMENTS_VIEW = """
create or replace view disagreements as
select problem_id, student_id, student_revision, sampling_hash, sample_index,
       any_value(extracted_answer) as extracted_answer,
       map_from_entries(list({'k': rule, 'v': verdict} order by rule)) as verdicts,
       list(rule || ': ' || reason order by rule) as reasons
from verdict_audit
group by all
having count(distinct verdict) > 1
"""


def _sql_str(value: str) -> str:
    return value.replace("'", "''")
