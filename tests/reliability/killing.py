"""Start a real `gradus` subprocess and SIGKILL it at a chosen point, then read back what it left on disk.

The child side (`python -m tests.reliability.killing --root R --config X [--kill-at N | --kill-on PREFIX]
[--when before|after] [--selection asset,...]`) wraps `os.replace`, the publish step of every atomic write
under the data root (`scoring.storage`, the export directory swap): it counts the replaces whose target lies
under the root, logs each one, and kills its own process with SIGKILL at the N-th, or at the first whose
target starts with PREFIX — `before` the rename (a finished temporary file is left behind, the old table is
still published) or `after` it (the table is published, the rest of the run never happens). Counting publishes
rather than sleeping makes each kill point land at the same place on every machine, however loaded. Without
`--selection` the child is `gradus run` itself (`pipelines.cli.main`); with it, those assets are materialized.
`kill_when` kills on an outside condition instead (e.g. the cache row count, for a stage that publishes once).

The parent side runs the child, returns the log of publishes, and offers the checks every kill test makes:
no partial files, every Parquet file readable, no duplicate keys, the same rows as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import cached_completions

REPO = Path(__file__).resolve().parents[2]
# Columns whose value legitimately differs between two runs of the same config (wall clock, durations).
VOLATILE = ("_at", "seconds", "elapsed", "duration", "timestamp", "run_id", "wall")


@dataclass(frozen=True)
class Publish:
    """One `os.replace` into the data root made by the child: its order, phase and target (relative path)."""

    index: int
    when: str
    target: str
    at: float


@dataclass(frozen=True)
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    publishes: list[Publish]
    seconds: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def _install_hook(root: Path, kill_at: int | None, when: str, log: Path | None, kill_on: str | None = None) -> None:
    """Wrap the two publish steps in this (child) process — `os.replace` (shards, exports, text files) and the
    Delta commit of a table write — log and count publishes under `root`; SIGKILL at the N-th, or at the first
    whose target (relative to the root) starts with `kill_on`."""
    real_replace = os.replace
    count = 0
    start = time.monotonic()
    fh = open(log, "a", encoding="utf-8", buffering=1) if log else None  # noqa: SIM115 (lives as long as the child)

    def hit_test(rel: str, phase: str) -> bool:
        nonlocal count
        if phase == "before":
            count += 1
        if fh:
            fh.write(f"{count}\t{phase}\t{rel}\t{time.monotonic() - start:.3f}\n")
        return kill_at == count or (kill_on is not None and rel.startswith(kill_on))

    def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = Path(os.fspath(dst)).resolve()
        if root not in target.parents:
            return real_replace(src, dst, *args, **kwargs)
        rel = target.relative_to(root).as_posix()
        if hit_test(rel, "before") and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real_replace(src, dst, *args, **kwargs)
        if hit_test(rel, "after") and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    os.replace = replace  # type: ignore[assignment]
    _hook_table_commits(root, hit_test, when, fh, start)


def _hook_table_commits(root: Path, hit_test: Callable[[str, str], bool], when: str, fh: object, start: float) -> None:
    """Wrap the Delta write of a table (`scoring.delta_tables.write_deltalake`). Its publish is the log commit,
    done inside delta-rs, so a kill `before` it is staged the way a crash there leaves the table: this write's
    data file is on disk, no commit refers to it (an uncommitted file, which `partial_files` reports)."""
    import scoring.delta_tables as delta_tables

    real_write = delta_tables.write_deltalake

    def write(where: str, data: pa.Table, **kwargs: object) -> None:
        directory = Path(where).resolve()
        partition = "".join(f"{k}={data.column(k)[0].as_py()}/" for k in kwargs.get("partition_by") or [] if len(data))
        rel = f"{directory.relative_to(root).as_posix()}/{partition}"
        if hit_test(rel, "before") and when == "before":
            (directory / partition).mkdir(parents=True, exist_ok=True)
            pq.write_table(data, directory / partition / f"part-00000-{uuid.uuid4()}-c000.snappy.parquet")
            os.kill(os.getpid(), signal.SIGKILL)
        real_write(where, data, **kwargs)
        if hit_test(rel, "after") and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    delta_tables.write_deltalake = write  # type: ignore[assignment]


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="killing")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--kill-on", default=None, help="kill at the first publish under this relative prefix")
    parser.add_argument("--when", choices=("before", "after"), default="before")
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--selection", default=None, help="comma-separated asset names: materialize only these")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    _install_hook(args.root.resolve(), args.kill_at, args.when, args.log, args.kill_on)
    if args.selection is None:
        from pipelines.cli import main

        return main(["run", "--config", str(args.config)])
    import dagster as dg

    from assets import ALL_ASSETS
    from pipelines.materialize import materialize_project

    wanted = set(args.selection.split(","))
    selection = [a for a in ALL_ASSETS if a.key.to_user_string() in wanted]
    result = materialize_project(args.config, selection=selection, instance=dg.DagsterInstance.ephemeral())
    stats = {}
    for node in ("rollouts", "scalequest_problems", "glan_problems"):
        for materialization in result.asset_materializations_for_node(node) if node in wanted else ():
            meta = materialization.metadata
            if "model_calls" in meta:
                stats[node] = (meta["model_calls"].value, meta.get("cache_hits", dg.MetadataValue.int(0)).value)
    for node, (calls, hits) in stats.items():
        print(f"{node}: model calls {calls}, cache hits {hits}", flush=True)
    return 0 if result.success else 1


def run_child(
    config: Path,
    root: Path,
    *,
    kill_at: int | None = None,
    kill_on: str | None = None,
    when: str = "before",
    selection: list[str] | None = None,
    timeout: float = 900,
) -> ChildRun:
    """Run the pipeline in a subprocess (the `gradus run` CLI, or `selection` materialized), killed at publish
    number `kill_at` or at the first publish under `kill_on` if given. Returns its exit status, output and the
    publishes it made."""
    log = root.parent / f"publishes-{time.monotonic_ns()}.tsv"
    cmd, env = _command(config, root, log, selection)
    cmd += ["--when", when]
    if kill_at is not None:
        cmd += ["--kill-at", str(kill_at)]
    if kill_on is not None:
        cmd += ["--kill-on", kill_on]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    publishes = []
    if log.exists():
        for line in log.read_text().splitlines():
            index, phase, target, at = line.split("\t")
            publishes.append(Publish(int(index), phase, target, float(at)))
        log.unlink()
    return ChildRun(proc.returncode, proc.stdout, proc.stderr, publishes, time.monotonic() - start)


def _command(config: Path, root: Path, log: Path, selection: list[str] | None) -> tuple[list[str], dict[str, str]]:
    cmd = ["nice", sys.executable, "-m", "tests.reliability.killing", "--root", str(root), "--config", str(config)]
    cmd += ["--log", str(log)]
    if selection:
        cmd += ["--selection", ",".join(selection)]
    return cmd, {**os.environ, "DAGSTER_HOME": str(root.parent), "PYTHONPATH": str(REPO)}


def kill_when(
    config: Path,
    root: Path,
    ready: Callable[[], bool],
    *,
    selection: list[str] | None = None,
    timeout: float = 900,
) -> bool:
    """Start the pipeline in a subprocess and SIGKILL it as soon as `ready()` holds (polled every 0.1 s), e.g.
    "the cache holds 2 completions". Returns whether the kill landed before the child finished on its own."""
    cmd, env = _command(config, root, root.parent / "publishes-poll.tsv", selection)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    landed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    return landed


def copy_cache(source: Path, target: Path) -> int:
    """Copy the completion cache of data root `source` into data root `target` with SQLite's backup API (a
    consistent copy even of a WAL database); returns the rows copied."""
    dst = target / "cache" / "completions.sqlite"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source / "cache" / "completions.sqlite") as src, sqlite3.connect(dst) as out:
        src.backup(out)
    return cached_completions(dst)


def partial_files(root: Path) -> list[Path]:
    """Temporary files a writer left behind (`.name.tmp-<pid>-<id>`), anywhere under the data root."""
    temporaries = [p for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith((".tmp", ".partial"))]
    return temporaries + uncommitted_table_files(root)


def uncommitted_table_files(root: Path) -> list[Path]:
    """Data files in a table directory that no version of its Delta log refers to (a writer died before its
    commit)."""
    from scoring.delta_tables import referenced_files

    tables = root / "tables"
    found: list[Path] = []
    for directory in sorted(tables.iterdir()) if tables.is_dir() else []:
        if (directory / "_delta_log").is_dir():
            known = referenced_files(directory)
            found += [p for p in directory.rglob("part-*.parquet") if p.resolve() not in known]
    return found


def unreadable_parquet(root: Path) -> list[tuple[Path, str]]:
    """Every Parquet file under the root that does not read back whole."""
    bad = []
    for path in root.rglob("*.parquet"):
        try:
            pq.read_table(path)
        except Exception as exc:  # any failure to read is what we are looking for
            bad.append((path, repr(exc)))
    return bad


def _stable(table: pa.Table) -> pa.Table:
    keep = [c for c in table.column_names if not any(v in c for v in VOLATILE)]
    return table.select(keep)


def table_rows(root: Path, under: str = "tables") -> dict[str, list[tuple]]:
    """Every table (its current version, partition columns included) or every Parquet file under `root/under`
    as its sorted rows (volatile columns dropped), by relative path."""
    out: dict[str, list[tuple]] = {}
    if under == "tables":
        from scoring.storage import DataRoot

        data = DataRoot(root)
        for directory in sorted((root / under).iterdir()) if (root / under).is_dir() else []:
            files = data.table_files(directory.name) if (directory / "_delta_log").is_dir() else []
            if files:
                with duckdb.connect() as con:
                    table = con.sql(f"select * from read_parquet({files!r}, hive_partitioning = true)").to_arrow_table()
                rows = [tuple(repr(v) for v in row.values()) for row in _stable(table).to_pylist()]
                out[f"{under}/{directory.name}"] = sorted(rows)
        return out
    for path in sorted((root / under).rglob("*.parquet")):
        table = _stable(pq.read_table(path))
        rows = [tuple(repr(v) for v in row.values()) for row in table.to_pylist()]
        out[path.relative_to(root).as_posix()] = sorted(rows)
    return out


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
