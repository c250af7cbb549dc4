"""A persistent, content-addressed cache of completions, in SQLite (WAL) under the data root.

The key is the sha256 of the canonical JSON of everything that determines a sample: backend, model id and
revision, messages, per-sample sampling parameters, seed and sample index. Each completion is committed as soon
as it exists, so a killed run resumes without paying for finished samples, and concurrent writers (two runs,
two processes) are safe: SQLite serialises the writes and `INSERT OR IGNORE` keeps the first value.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path

from engines.base import Completion, SampleCall, canonical_json, sha256_hex

_SCHEMA = """
create table if not exists completions (
    key text primary key,
    backend text not null,
    model_id text not null,
    value text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


_COMPLETION_FIELDS = tuple(f.name for f in fields(Completion))


def cache_key(backend: str, model_id: str, model_revision: str, call: SampleCall) -> str:
    """The content address of one sample. An open-turn (raw-prefix) call differs from the chat call with the same
    text only by `"open": true` on its final message, which ordinary messages never carry (`Message.as_json`), so
    the keys of ordinary chat calls are unchanged by that mode."""
    return sha256_hex(
        canonical_json(
            {
                "backend": backend,
                "model_id": model_id,
                "model_revision": model_revision,
                "messages": call.messages_json(),
                "sampling": call.sampling.per_sample(),
                "seed": call.sampling.seed,
                "sample_index": call.sample_index,
            }
        )
    )


def read_completions(conn: sqlite3.Connection, keys: list[str]) -> dict[str, Completion]:
    """The stored completions among `keys` in the `completions` table of `conn` (in chunks of SQLite's limit)."""
    found: dict[str, Completion] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for key, value in conn.execute(f"select key, value from completions where key in ({marks})", chunk):
            found[key] = Completion(**json.loads(value))
    return found


def store_completion(conn: sqlite3.Connection, key: str, backend: str, model_id: str, completion: Completion) -> None:
    """Store a successful completion under `key` (the first value wins); failures are never stored, so they are
    retried next run."""
    if not completion.ok:
        return
    # field by field: `dataclasses.asdict` deep-copies and cost as much as the insert itself (bench/pipeline_scale.py)
    value = json.dumps({**{name: getattr(completion, name) for name in _COMPLETION_FIELDS}, "cached": False})
    conn.execute(
        "insert or ignore into completions (key, backend, model_id, value) values (?, ?, ?, ?)",
        (key, backend, model_id, value),
    )


class CompletionCache:
    """Get and put completions by key. Only successful completions are stored: errors are retried next run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=normal")
        self._conn.execute(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        with self._lock:
            return read_completions(self._conn, keys)

    def put(self, key: str, backend: str, model_id: str, completion: Completion) -> None:
        with self._lock:
            store_completion(self._conn, key, backend, model_id, completion)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("select count(*) from completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
