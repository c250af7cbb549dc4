"""The completion cache with many writers: per-worker shards, read-through to the main cache, merged after a job.

One SQLite file written by processes on many nodes is not safe (SQLite's locks and WAL index assume one host),
so a distributed job never writes the main cache (`<root>/cache/completions.sqlite`). Each worker instead
(design choice, issue 11):

- reads the main cache first, opened read-only (`mode=ro`): the driver checkpoints its WAL before the job, so
  the main file itself holds every entry and nothing writes it while the job runs;
- writes what it generates to its own shard, `<root>/cache/shards/<run>-<worker>.sqlite` — one writer per file,
  committed per sample, so a worker killed mid-batch keeps what it paid for;
- the driver merges the job's shards into the main cache after it, with `INSERT OR IGNORE`, and deletes them;
  before a job it merges (and keeps) any shard left on disk — a killed job's, or a live one of another job on
  the same data root, which it must not delete. Keys are content addresses (`engines.cache.cache_key`), so a
  key means one sample and a merge is idempotent: merging a shard twice, or two shards holding the same key,
  adds each key once and never changes a stored value.

The data root must be on storage every worker can read (the same machine, or a shared filesystem such as NFS),
as the model files are. A server-backed store (Redis, Postgres) would also work across nodes, at the price of a
service to run; shards keep the cache a plain file and a rerun still makes zero model calls.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engines.base import Completion
from engines.cache import _SCHEMA, CompletionCache, read_completions, store_completion
from engines.errors import ConfigError

SHARDS_DIR = "shards"


def shards_dir(main_path: Path) -> Path:
    """Where the shards of the cache at `main_path` live: `<cache dir>/shards/`."""
    return Path(main_path).parent / SHARDS_DIR


def shard_path(main_path: Path, run_id: str, worker_id: str) -> Path:
    """The shard one worker of one run writes: `<cache dir>/shards/<run>-<worker>.sqlite`."""
    return shards_dir(main_path) / f"{run_id}-{worker_id}.sqlite"


def checkpoint_main(main_path: Path) -> None:
    """Fold the main cache's WAL into its file (and create it when missing), so read-only workers see every
    entry without the WAL index, which does not work across hosts."""
    CompletionCache(main_path).close()  # creates the file and table if needed
    conn = sqlite3.connect(main_path, timeout=60)
    try:
        conn.execute("pragma wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


class ShardedCache:
    """A worker's cache: `get_many` reads the main cache (read-only) then the worker's shard; `put` writes the
    shard only. Same interface as `CompletionCache`, so `engines.Engine` takes it as its cache."""

    def __init__(self, main_path: Path, shard: Path) -> None:
        self.main_path = Path(main_path)
        self.shard_path = Path(shard)
        if not self.main_path.is_file():
            raise ConfigError(f"main completion cache {str(self.main_path)!r} not found (call checkpoint_main first)")
        self._main = sqlite3.connect(f"file:{self.main_path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        self.shard_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # One writer per shard file: a rollback journal (not WAL) needs no shared-memory index, so it also works
        # on network filesystems.
        self._shard = sqlite3.connect(self.shard_path, timeout=60, check_same_thread=False, isolation_level=None)
        self._shard.execute("pragma journal_mode=delete")
        self._shard.execute("pragma synchronous=normal")
        self._shard.execute(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        with self._lock:
            found = read_completions(self._main, keys)
            return found | read_completions(self._shard, [k for k in keys if k not in found])

    def put(self, key: str, backend: str, model_id: str, completion: Completion) -> None:
        with self._lock:
            store_completion(self._shard, key, backend, model_id, completion)

    def __len__(self) -> int:
        with self._lock:
            return int(self._shard.execute("select count(*) from completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._main.close()
            self._shard.close()


@dataclass(frozen=True, slots=True)
class MergeReport:
    shards: int  # shard files merged
    rows_seen: int  # entries read from them
    rows_added: int  # entries new to the main cache (the rest it already had)


def merge_shards(main_path: Path, shards: Iterable[Path] | None = None, *, remove: bool = True) -> MergeReport:
    """Merge shards (default: every shard beside the main cache) into the main cache with `INSERT OR IGNORE`.

    Idempotent: keys are content addresses, so re-merging adds nothing and never overwrites. A merged shard is
    deleted when `remove` is set (after its rows are committed, so a crash mid-merge loses nothing)."""
    paths = sorted(shards_dir(main_path).glob("*.sqlite")) if shards is None else sorted(map(Path, shards))
    checkpoint_main(main_path)  # also creates the main cache, so workers can open it read-only
    conn = sqlite3.connect(main_path, timeout=60, isolation_level=None)
    seen = added = 0
    try:
        conn.execute("pragma journal_mode=wal")
        for path in paths:
            before = conn.total_changes
            conn.execute("attach database ? as shard", (str(path),))
            try:
                conn.execute("begin immediate")
                seen += conn.execute("select count(*) from shard.completions").fetchone()[0]
                conn.execute(
                    "insert or ignore into main.completions (key, backend, model_id, value, created_at) "
                    "select key, backend, model_id, value, created_at from shard.completions"
                )
                conn.execute("commit")
            finally:
                conn.execute("detach database shard")
            added += conn.total_changes - before
            if remove:
                for leftover in (path, path.with_name(path.name + "-journal")):
                    leftover.unlink(missing_ok=True)
        conn.execute("pragma wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return MergeReport(len(paths), seen, added)
