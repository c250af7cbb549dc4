"""The data root: every table a Delta Lake table under one directory (`delta_tables.py`; its DuckDB catalog:
`catalog.py`), shards and exports as Parquet files written atomically.

Layout (see `../shared/design.md`):
    <root>/tables/<table>/_delta_log/ + [<key>=<value>/]part-*.parquet
    <root>/shards/<student>/<strategy>/shard-00000.parquet + manifest.json
    <root>/cache/completions.sqlite
    <root>/cache/embeddings.sqlite
    <root>/models/
    <root>/catalog.duckdb      one view per table, refreshed at the end of each run (`catalog.py`)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engines.errors import ConfigError
from scoring import delta_tables
from scoring.errors import StorageError
from scoring.schemas import TABLE_KEYS, schema_for

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_name(value: str, what: str) -> str:
    """A name used as a path component: letters, digits, '.', '_', '-' only — no '..', no '/'."""
    if not _SAFE_NAME.match(value) or ".." in value:
        raise ConfigError(
            f"{what} {value!r} is not a safe name: use letters, digits, '.', '_' and '-' (no '/' or '..')"
        )
    return value


# Names our writers give unfinished files and set-aside directories: `.<name>.tmp-<pid>-<hex>` (tables, shards,
# exports), `.<name>.old-<pid>-<hex>` (an export being replaced), `<name>.tmp-<pid>` (model files, sidecars).
_TEMP_NAME = re.compile(r"^(?P<base>.+)\.(?:tmp|old)-(?P<pid>\d+)(?:-[0-9a-f]+)?$")
_swept: set[Path] = set()
# Table directories this process has found in the Delta format (nothing left to migrate).
_migrated: set[Path] = set()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def sweep_stale_temps(directory: Path) -> list[Path]:
    """Delete the temporary files and set-aside directories in `directory` whose writer process is gone.

    A writer killed with SIGKILL (or by a power cut) between writing its temporary file and renaming it leaves
    the file behind; nothing reads it (the published name is untouched), but it wastes space and looks like
    partial output. Temporaries of live processes — a concurrent run still writing — are left alone.
    """
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match or _pid_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _sweep_once(directory: Path) -> None:
    # Once per directory per process: a shard directory of thousands of files is not listed per shard written.
    if directory not in _swept:
        _swept.add(directory)
        sweep_stale_temps(directory)


def _storage_error(exc: OSError, path: Path) -> StorageError:
    return delta_tables.storage_error(exc.errno, path, str(exc))


def _publish(path: Path, write: Callable[[Path], None]) -> Path:
    """Write via `write(tmp)` to a temporary name beside `path`, fsync, then rename over it: readers never see a
    partial file, and a failed write (disk full, read-only) leaves the previous version in place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _sweep_once(path.parent)
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _storage_error(exc, path) from exc
    finally:
        with contextlib.suppress(OSError):  # the directory is unwritable or gone; nothing was published either
            tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Publish `table` at `path` atomically (see `_publish`); raises `StorageError` naming the path on failure."""
    return _publish(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_text_atomic(text: str, path: Path) -> Path:
    """Publish `text` at `path` atomically (see `_publish`); raises `StorageError` naming the path on failure."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    return _publish(path, write)


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
    def embedding_cache_path(self) -> Path:
        return self.path / "cache" / "embeddings.sqlite"

    @property
    def catalog_path(self) -> Path:
        return self.path / "catalog.duckdb"

    def table_dir(self, table: str) -> Path:
        """The directory of a table: a Delta Lake table (`delta_tables.py`)."""
        schema_for(table)
        return self.tables_dir / safe_name(table, "table")

    def table_path(self, table: str, partition: dict[str, str] | None = None) -> Path:
        """The directory of a table's partition (what a stage's summary points at)."""
        directory = self.table_dir(table)
        for key, value in (partition or {}).items():
            directory = directory / f"{safe_name(key, 'partition key')}={safe_name(value, key)}"
        return directory

    def _ready(self, table: str) -> Path:
        """The table's directory, with a pre-Delta table (one `data.parquet` per partition) migrated first."""
        directory = self.table_dir(table)
        if directory in _migrated:  # checked once per process: the listing walks every file of the table
            return directory
        if delta_tables.legacy_files(directory):
            with delta_tables.write_lock(directory):
                delta_tables.migrate_legacy(directory, schema_for(table))
        if delta_tables.is_delta(directory):
            _migrated.add(directory)
        return directory

    def write_table(self, table: str, data: pa.Table, partition: dict[str, str] | None = None) -> Path:
        """Replace the partition's rows (the whole table's when `partition` is None) with `data`, cast to the
        table's declared schema, in one atomic commit; earlier versions stay readable (`read_table(version=)`)."""
        self.table_path(table, partition)  # refuses unsafe names before anything is written
        directory = self._ready(table)
        data = data.select(schema_for(table).names).cast(schema_for(table))
        with delta_tables.write_lock(directory):
            delta_tables.commit(directory, data, partition or {}, replace=True)
        return self.table_path(table, partition)

    def read_table(
        self,
        table: str,
        partition: dict[str, str] | None = None,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """The stored rows (of one partition), or an empty table of the declared schema when nothing was written
        yet. `version` reads the table as it was after that commit (see `table_history`)."""
        self.table_path(table, partition)
        directory = self._ready(table)
        return delta_tables.read(
            directory,
            schema_for(table),
            partition,
            version=version,
            columns=columns,
            sort_by=TABLE_KEYS.get(table, ()),
        )

    def query_table(
        self,
        table: str,
        sql: str,
        partition: dict[str, str] | None = None,
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
    ) -> pa.Table | None:
        """Run `sql` in DuckDB over the stored rows (of one partition), visible as the view `stored`: an
        aggregate over a large table without reading it into memory. None when nothing is stored yet."""
        self.table_path(table, partition)
        return delta_tables.query(
            self._ready(table), schema_for(table), sql, partition, version=version, columns=columns
        )

    def read_all_partitions(self, table: str) -> pa.Table:
        """Every partition of a table concatenated (e.g. the difficulty rows of all students)."""
        return self.read_table(table)

    def has_table(self, table: str) -> bool:
        """Whether the table was ever written (it may hold no rows)."""
        return delta_tables.is_delta(self._ready(table))

    def partition_keys(self, table: str) -> list[str]:
        """The partition columns of a stored table (none when it is not partitioned or not written yet)."""
        stored = delta_tables.open_table(self._ready(table))
        return [] if stored is None else list(stored.metadata().partition_columns)

    def has_rows(self, table: str, partition: dict[str, str] | None = None) -> bool:
        """Whether the table (one partition of it) holds any row."""
        return bool(self.table_files(table, partition))

    def table_files(
        self, table: str, partition: dict[str, str] | None = None, *, version: int | None = None
    ) -> list[str]:
        """The Parquet files of the table (one partition) at its latest or a given version: what DuckDB reads."""
        self.table_path(table, partition)
        return delta_tables.files(self._ready(table), partition, version)

    def table_history(self, table: str) -> list[dict[str, object]]:
        """The table's commits, newest first (version, timestamp_ms, operation, parameters, metrics)."""
        return delta_tables.history(self._ready(table))

    def upsert_table(
        self, table: str, new: pa.Table, key: tuple[str, ...], partition: dict[str, str] | None = None
    ) -> pa.Table:
        """Add rows whose key is not stored yet and return them; rows already stored win, so reruns never
        duplicate evidence. The cost grows with the rows added, not with the table: the stored side of the
        check reads only the key columns (DuckDB anti-join), and the write appends one file."""
        self.table_path(table, partition)
        schema = schema_for(table)
        directory = self._ready(table)
        new = new.select(schema.names).cast(schema)
        with delta_tables.write_lock(directory):
            fresh = delta_tables.fresh_rows(directory, new, key, partition or {})
            if fresh.num_rows or not delta_tables.is_delta(directory):  # an empty first write creates the table
                fresh = fresh.sort_by([(k, "ascending") for k in key])
                delta_tables.commit(directory, fresh, partition or {}, replace=False)
                delta_tables.compact_if_fragmented(directory, partition or {})
        return fresh

    def sweep_temps(self) -> list[Path]:
        """Remove every temporary left under the root by a writer that died (see `sweep_stale_temps`), and the
        data files of table writes that died before their commit (`delta_tables.sweep_uncommitted`)."""
        parents = {p.parent for p in self.path.rglob("*") if _TEMP_NAME.match(p.name)}
        removed = [removed for parent in sorted(parents) for removed in sweep_stale_temps(parent)]
        tables = sorted(self.tables_dir.iterdir()) if self.tables_dir.is_dir() else []
        return removed + [orphan for table in tables for orphan in delta_tables.sweep_uncommitted(table)]
