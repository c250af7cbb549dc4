"""The data root: every table as Parquet under one directory, written atomically (its DuckDB catalog: `catalog.py`).

Layout (see `../shared/design.md`):
    <root>/tables/<table>/[<key>=<value>/]data.parquet
    <root>/shards/<student>/<strategy>/shard-00000.parquet + manifest.json
    <root>/cache/completions.sqlite
    <root>/cache/embeddings.sqlite
    <root>/models/
    <root>/catalog.duckdb      one view per table, refreshed at the end of each run (`catalog.py`)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engines.errors import ConfigError
from scoring.errors import StorageError
from scoring.schemas import schema_for

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
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    code = errno.errorcode.get(exc.errno or 0, "")
    hint = {
        errno.ENOSPC: "free space on that file system (or set data_root elsewhere) and rerun",
        errno.EDQUOT: "raise the disk quota (or set data_root elsewhere) and rerun",
        errno.EFBIG: "the file size limit (ulimit -f) or the file system's maximum was reached",
        errno.EROFS: "the data root is on a read-only file system: set data_root (or GRADUS_HOME) to a writable one",
        errno.EACCES: "the data root is not writable by this user: fix its permissions or set data_root elsewhere",
        errno.EPERM: "the data root is not writable by this user: fix its permissions or set data_root elsewhere",
    }.get(exc.errno or 0, "check the data root and rerun")
    return StorageError(
        f"could not write {path}: {reason}{f' ({code})' if code else ''}; the previous version, if any, is "
        f"unchanged; {hint}"
    )


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

    def read_all_partitions(self, table: str) -> pa.Table:
        """Every partition of a table concatenated (e.g. the difficulty rows of all students)."""
        schema = schema_for(table)
        files = sorted((self.tables_dir / table).rglob("data.parquet"))
        parts = []
        for path in files:
            partition = {
                key: value
                for key, value in (p.split("=", 1) for p in path.parent.relative_to(self.tables_dir / table).parts)
            }
            parts.append(self.read_table(table, partition or None))
        return pa.concat_tables(parts) if parts else schema.empty_table()

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

    def sweep_temps(self) -> list[Path]:
        """Remove every temporary left under the root by a writer that died (see `sweep_stale_temps`)."""
        parents = {p.parent for p in self.path.rglob("*") if _TEMP_NAME.match(p.name)}
        return [removed for parent in sorted(parents) for removed in sweep_stale_temps(parent)]
