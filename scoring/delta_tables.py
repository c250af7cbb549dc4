"""One stored table as a Delta Lake table (delta-rs, the `deltalake` package): Parquet files plus a commit log.

Why Delta (issue 24): an append writes only the new rows' files and one log entry, so adding 10k rows costs the
same on a 16k-row table as on a 1.6M-row one; commits are atomic (a reader sees a whole commit or none of it);
every earlier version stays readable until it is vacuumed (time travel); small files are compacted in place; and
the files are plain Parquet that a stock DuckDB reads with no extension, so `catalog.duckdb` still opens offline.

Writers of one table take an exclusive `flock` on its lock file for the length of a write. Delta's own commit
protocol already makes concurrent appends safe from loss; the lock makes "rows already stored win" safe from
duplication too (two processes appending the same keys at once would both pass the anti-join otherwise).

A table written by an earlier Gradus (one `data.parquet` per partition directory) is rewritten as a Delta table
in place the first time it is opened for writing or reading (`migrate_legacy`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from scoring.errors import StorageError

LOG_DIR = "_delta_log"
LOCK_NAME = ".gradus-write.lock"
LEGACY_FILE = "data.parquet"
# An append adds a file; once a partition holds this many, its small files are bin-packed into larger ones.
COMPACT_AT_FILES = 32
_OS_ERROR = re.compile(r"os error (\d+)")

Partition = Mapping[str, str]


@contextlib.contextmanager
def write_lock(directory: Path) -> Iterator[None]:
    """Hold the table's exclusive writer lock (a `flock`, released when the process dies)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / LOCK_NAME, "a+")  # noqa: SIM115 — held across the yield
    except OSError as exc:
        raise storage_error(exc.errno, directory, str(exc)) from exc
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def storage_error(code: int | None, path: Path, detail: str = "") -> StorageError:
    """A `StorageError` naming `path`, the OS error `code` (or `detail` when there is none) and what to do."""
    reason = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})" if code else detail or "unknown error"
    hint = {
        errno.ENOSPC: "free space on that file system (or set data_root elsewhere) and rerun",
        errno.EDQUOT: "raise the disk quota (or set data_root elsewhere) and rerun",
        errno.EFBIG: "the file size limit (ulimit -f) or the file system's maximum was reached",
        errno.EROFS: "the data root is on a read-only file system: set data_root (or GRADUS_HOME) to a writable one",
        errno.EACCES: "the data root is not writable by this user: fix its permissions or set data_root elsewhere",
        errno.EPERM: "the data root is not writable by this user: fix its permissions or set data_root elsewhere",
    }.get(code or 0, "check the data root and rerun")
    return StorageError(f"could not write {path}: {reason}; the previous version, if any, is unchanged; {hint}")


def _delta_storage_error(exc: Exception, path: Path) -> StorageError:
    found = _OS_ERROR.search(str(exc))
    code = int(found.group(1)) if found else getattr(exc, "errno", None)
    return storage_error(code, path, str(exc))


def is_delta(directory: Path) -> bool:
    """Whether `directory` holds a committed Delta table."""
    log = directory / LOG_DIR
    return log.is_dir() and (any(log.glob("*.json")) or any(log.glob("*.checkpoint.parquet")))


def open_table(directory: Path, version: int | None = None) -> DeltaTable | None:
    """The Delta table in `directory` (at `version` when given), or None when nothing was committed there."""
    if not is_delta(directory):
        return None
    try:
        return DeltaTable(str(directory), version=version)
    except TableNotFoundError:
        return None
    except DeltaError as exc:
        if version is not None:
            raise StorageError(f"{directory} has no readable version {version}: {exc}") from exc
        raise


def _predicate(partition: Partition) -> str:
    # Partition names and values passed `safe_name` (letters, digits, '.', '_', '-'), so quoting is enough.
    return " and ".join(f"{key} = '{value}'" for key, value in partition.items())


def _with_partition(data: pa.Table, partition: Partition) -> pa.Table:
    for key, value in partition.items():
        if key in data.column_names:
            raise StorageError(f"partition key {key!r} repeats a column of the table; name the partition otherwise")
        data = data.append_column(key, pa.array([value] * data.num_rows, type=pa.string()))
    return data


def _check_partition_keys(table: DeltaTable | None, directory: Path, partition: Partition) -> None:
    if table is None:
        return
    stored = list(table.metadata().partition_columns)
    if stored != list(partition):
        raise StorageError(
            f"{directory} is partitioned by {stored or 'nothing'}, but this write names {list(partition) or 'none'}"
        )


def _remove_uncommitted(directory: Path, since: float, table: DeltaTable | None) -> None:
    """After a failed write (under the lock): delete the Parquet files it left that no commit refers to (files of
    earlier versions stay: time travel reads them)."""
    committed = referenced_files(directory) if table is not None else set()
    for path in directory.rglob("*.parquet"):
        if LOG_DIR in path.parts or path.name == LEGACY_FILE:
            continue
        with contextlib.suppress(OSError):
            if path.resolve() not in committed and path.stat().st_mtime >= since - 1:
                path.unlink()


def _files(table: DeltaTable, partition: Partition | None = None) -> list[str]:
    uris = table.file_uris(file_pruning_predicate=[(k, "=", v) for k, v in (partition or {}).items()] or None)
    return sorted(u.removeprefix("file://") for u in uris)


def commit(
    directory: Path,
    data: pa.Table,
    partition: Partition,
    *,
    replace: bool,
) -> None:
    """Write `data` (already cast to its schema) into the partition: replace its rows, or append. Call under the
    writer lock. On failure the uncommitted files are removed and a `StorageError` names the directory."""
    table = open_table(directory)
    _check_partition_keys(table, directory, partition)
    started = time.time()
    arguments: dict[str, object] = {"partition_by": list(partition) or None, "schema_mode": "merge"}
    if replace and partition and table is not None:
        arguments["predicate"] = _predicate(partition)
    if replace and table is not None and not partition:
        arguments["schema_mode"] = "overwrite"
    try:
        write_deltalake(str(directory), _with_partition(data, partition), mode="overwrite" if replace else "append",
                        **arguments)  # fmt: skip
    except (DeltaError, OSError) as exc:
        _remove_uncommitted(directory, started, open_table(directory))
        raise _delta_storage_error(exc, directory) from exc


def read(
    directory: Path,
    schema: pa.Schema,
    partition: Partition | None = None,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    sort_by: Sequence[str] = (),
) -> pa.Table:
    """The stored rows of one partition (all of them when `partition` is None) in `schema`, sorted by `sort_by`
    (file order is not stable across appends and compactions); columns added to the schema after a file was
    written read as nulls."""
    wanted = list(columns) if columns is not None else schema.names
    target = pa.schema([schema.field(name) for name in wanted])
    result = query(directory, schema, "select * from stored", partition, version=version, columns=wanted)
    if result is None:
        return target.empty_table()
    order = [k for k in sort_by if k in wanted]
    if order:
        result = result.sort_by([(k, "ascending") for k in order])
    return result.cast(target)


def query(
    directory: Path,
    schema: pa.Schema,
    sql: str,
    partition: Partition | None = None,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table | None:
    """Run `sql` in DuckDB over the stored rows of one partition, visible as the view `stored` (only `columns`
    of `schema`, when given). DuckDB streams the Parquet files, so an aggregate costs memory in proportion to
    its result, not to the table. None when the table (partition) holds no file yet."""
    wanted = list(columns) if columns is not None else schema.names
    table = open_table(directory, version)
    stored_files = _files(table, partition) if table is not None else []
    if not stored_files:
        return None
    # DuckDB reads the files in the listed order (sorted paths: partitions in order, then each write's files in
    # the order it wrote them) and fills columns a file predates with nulls.
    present = {name for path in stored_files for name in pq.read_schema(path).names}
    select = ", ".join(f'"{name}"' if name in present else f'null as "{name}"' for name in wanted)
    con = duckdb.connect()
    try:
        con.execute("set threads to 2")
        files_sql = f"read_parquet({parquet_list(stored_files)}, union_by_name = true)"
        con.execute(f"create view stored as select {select} from {files_sql}")
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def parquet_list(paths: Sequence[str]) -> str:
    """Paths as a DuckDB list literal (`['a', 'b']`, quotes doubled) for `read_parquet`."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def files(directory: Path, partition: Partition | None = None, version: int | None = None) -> list[str]:
    """The Parquet files that make up the table (one partition of it) at its latest or a given version."""
    table = open_table(directory, version)
    return [] if table is None else _files(table, partition)


def fresh_rows(directory: Path, new: pa.Table, key: Sequence[str], partition: Partition) -> pa.Table:
    """The rows of `new` whose key is not stored in the partition: an anti-join in DuckDB that reads only the
    key columns of the partition's files, never the table into Python."""
    table = open_table(directory)
    stored = _files(table, partition) if table is not None else []
    if not stored or not new.num_rows:
        return new
    con = duckdb.connect()
    try:
        con.register("new_rows", new)
        con.execute("set threads to 2")
        on = " and ".join(f'n."{k}" is not distinct from s."{k}"' for k in key)
        keys = ", ".join(f'"{k}"' for k in key)
        query = (
            f"select n.* from new_rows n anti join (select {keys} from read_parquet({parquet_list(stored)}, "
            f"hive_partitioning = false, union_by_name = true)) s on {on} order by all"
        )
        return con.sql(query).to_arrow_table().cast(new.schema)
    finally:
        con.close()


def compact_if_fragmented(directory: Path, partition: Partition) -> int:
    """Bin-pack the partition's small files once it holds `COMPACT_AT_FILES` of them (call under the lock).
    Rewrites only files under the target size, so the cost is bounded by the small files, not the table."""
    table = open_table(directory)
    if table is None or len(_files(table, partition)) < COMPACT_AT_FILES:
        return 0
    filters = [(k, "=", v) for k, v in partition.items()] or None
    try:
        metrics = table.optimize.compact(partition_filters=filters)
    except (DeltaError, OSError) as exc:
        raise _delta_storage_error(exc, directory) from exc
    return int(metrics.get("numFilesRemoved", 0))


def history(directory: Path) -> list[dict[str, object]]:
    """Every commit of the table, newest first: version, timestamp (ms), operation and its metrics."""
    table = open_table(directory)
    if table is None:
        return []
    return [
        {
            "version": entry.get("version"),
            "timestamp_ms": entry.get("timestamp"),
            "operation": entry.get("operation"),
            "parameters": entry.get("operationParameters", {}),
            "metrics": entry.get("operationMetrics", {}),
        }
        for entry in table.history()
    ]


def referenced_files(directory: Path) -> set[Path]:
    """Every data file some version of the table refers to: the current ones, and every file added or removed
    by a commit still in the log (the files time travel needs)."""
    table = open_table(directory)
    if table is None:
        return set()
    known = {Path(f).resolve() for f in _files(table)}
    for entry in sorted((directory / LOG_DIR).glob("*.json")):
        for line in entry.read_text(encoding="utf-8").splitlines():
            action = json.loads(line) if line.strip() else {}
            for kind in ("add", "remove"):
                if kind in action:
                    known.add((directory / unquote(action[kind]["path"])).resolve())
    return known


def sweep_uncommitted(directory: Path) -> list[Path]:
    """Delete the data files of writers that died before their commit (no version refers to them). Takes the
    writer lock, so a live writer's files, written but not yet committed, are never touched."""
    if not is_delta(directory):
        return []
    with write_lock(directory):
        known = referenced_files(directory)
        orphans = [p for p in directory.rglob("part-*.parquet") if p.resolve() not in known]
        for path in orphans:
            path.unlink(missing_ok=True)
    return orphans


def legacy_files(directory: Path) -> list[Path]:
    """Tables written before Delta: one `data.parquet` per partition directory."""
    return sorted(directory.rglob(LEGACY_FILE)) if directory.is_dir() else []


def migrate_legacy(directory: Path, schema: pa.Schema) -> int:
    """Rewrite a pre-Delta table (`<key>=<value>/data.parquet` files) as a Delta table in the same directory;
    returns the rows migrated. Call under the writer lock. Safe to kill at any point: the legacy files are
    deleted only after the commit that holds all their rows, and files of an unfinished attempt are removed
    before the next one (no commit refers to them)."""
    legacy = legacy_files(directory)
    if not legacy:
        return 0
    if is_delta(directory):  # killed after the commit, before the old files went: they are in the table already
        for path in legacy:
            path.unlink(missing_ok=True)
        return 0
    _remove_uncommitted(directory, since=0.0, table=None)
    parts: list[pa.Table] = []
    keys: list[str] | None = None
    for path in legacy:
        partition = dict(p.split("=", 1) for p in path.parent.relative_to(directory).parts)
        if keys is None:
            keys = list(partition)
        if list(partition) != keys:
            raise StorageError(f"{directory}: legacy partitions differ in their keys ({keys} vs {list(partition)})")
        stored = pq.read_table(path)
        for field in schema:
            if field.name not in stored.column_names:
                stored = stored.append_column(field, pa.nulls(stored.num_rows, field.type))
        parts.append(_with_partition(stored.select(schema.names).cast(schema), partition))
    rows = pa.concat_tables(parts)
    try:
        write_deltalake(str(directory), rows, mode="overwrite", partition_by=keys or None)
    except (DeltaError, OSError) as exc:
        _remove_uncommitted(directory, since=0.0, table=None)
        raise _delta_storage_error(exc, directory) from exc
    for path in legacy:
        path.unlink(missing_ok=True)
    return rows.num_rows
