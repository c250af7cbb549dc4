"""Faults at the storage boundary: a full disk (`ENOSPC`) and a read-only data root (`EROFS`, `EACCES`) are
injected where the bytes are written — tests run as root, where chmod does not stop writes, and mounting a
small tmpfs is not allowed in CI. Each fault gives a `StorageError` naming the path, leaves the previously
published version intact and readable, and leaves no partial file behind. A writer killed between writing its
temporary file and renaming it leaves a temporary that the next write in that directory removes."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake.exceptions import DeltaError

import scoring.storage as storage
from scoring.catalog import refresh_catalog
from scoring.errors import StorageError
from scoring.schemas import PROBLEMS
from scoring.storage import DataRoot, sweep_stale_temps, write_parquet_atomic, write_text_atomic
from synthesis.families import FAMILIES
from tests.reliability.killing import partial_files, unreadable_parquet


def _problems(n: int, seed: int = 0) -> pa.Table:
    items = FAMILIES.get("arithmetic")().sample(seed, [1], n)
    return pa.Table.from_pylist([{c: getattr(p, c) for c in PROBLEMS.names} for p in items], schema=PROBLEMS)


def _delta_write_failing_with(code: int):  # returns a fake deltalake.write_deltalake
    """A Delta write that leaves half a data file in the table (what a filling disk does) and then fails the way
    delta-rs reports an OS error (the message it gave for a real EFBIG: "... (os error 27)")."""

    def write_deltalake(where: str, data: pa.Table, **kwargs: object) -> None:
        part = Path(where) / "part-00000-injected-c000.snappy.parquet"
        pq.write_table(data, part)
        with open(part, "r+b") as fh:
            fh.truncate(os.path.getsize(part) // 2)
        raise DeltaError(
            f"Generic LocalFileSystem error: Unable to copy data to file: {os.strerror(code)} (os error {code})"
        )

    return write_deltalake


@pytest.mark.parametrize(
    "code,hint",
    [(errno.ENOSPC, "free space"), (errno.EDQUOT, "quota"), (errno.EROFS, "read-only"), (errno.EACCES, "writable")],
)
def test_a_failed_table_write_names_the_path_and_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    root = DataRoot(tmp_path / "root")
    before = _problems(3)
    root.write_table("problems", before)
    monkeypatch.setattr(storage.delta_tables, "write_deltalake", _delta_write_failing_with(code))
    with pytest.raises(StorageError) as caught:
        root.write_table("problems", _problems(5, seed=1))
    message = str(caught.value)
    assert str(root.table_path("problems")) in message and errno.errorcode[code] in message and hint in message
    monkeypatch.undo()
    assert root.read_table("problems").equals(before.cast(PROBLEMS)), "the previous version is intact"
    assert not partial_files(root.path) and not unreadable_parquet(root.path)


CHILD = """
import resource, signal, sys
from pathlib import Path
import pyarrow as pa
from scoring.errors import StorageError
from scoring.storage import DataRoot
from tests.reliability.test_storage_faults import _problems
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then an oversized write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (32_768, 32_768))
try:
    DataRoot(Path(sys.argv[1])).write_table("problems", _problems(2_000, seed=5))
except StorageError as exc:
    print(exc)
    sys.exit(3)
"""


def test_a_real_write_limit_from_the_kernel_is_reported_the_same_way(tmp_path: Path) -> None:
    """No injection: the kernel refuses the write (RLIMIT_FSIZE gives EFBIG, the nearest thing to a full disk
    without mounting one) in a child process; the error names the path and the old version survives."""
    root = DataRoot(tmp_path / "root")
    root.write_table("problems", _problems(2))
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(root.path)], capture_output=True, text=True, cwd=repo, timeout=120
    )
    assert child.returncode == 3, child.stdout + child.stderr
    assert str(root.table_path("problems")) in child.stdout and "EFBIG" in child.stdout
    assert root.read_table("problems").num_rows == 2
    assert not partial_files(root.path) and not unreadable_parquet(root.path)


def test_a_full_disk_during_upsert_keeps_every_stored_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = DataRoot(tmp_path / "root")
    root.upsert_table("problems", _problems(3), ("problem_id",))
    monkeypatch.setattr(storage.delta_tables, "write_deltalake", _delta_write_failing_with(errno.ENOSPC))
    with pytest.raises(StorageError, match="No space left on device"):
        root.upsert_table("problems", _problems(6, seed=2), ("problem_id",))
    monkeypatch.undo()
    assert root.read_table("problems").num_rows == 3
    assert not partial_files(root.path)


def test_a_text_write_on_a_full_disk_keeps_the_old_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.json"
    write_text_atomic('{"version": 1}\n', path)

    def full_fsync(fd: int) -> None:  # the data hits the disk at fsync: that is where a full disk reports
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, "fsync", full_fsync)
    with pytest.raises(StorageError, match=str(path)):
        write_text_atomic('{"version": 2}\n', path)
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_a_read_only_data_root_fails_at_the_first_shard_and_keeps_the_published_curriculum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "shards" / "s" / "easy_to_hard_v1"
    write_parquet_atomic(_problems(2), out / "shard-00000.parquet")
    write_text_atomic('{"shards": 1}\n', out / "manifest.json")
    published = {p.name: p.read_bytes() for p in out.iterdir()}

    def read_only(src: object, dst: object) -> None:  # the rename is refused: a remount read-only mid-run
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(storage.os, "replace", read_only)
    with pytest.raises(StorageError, match="shard-00000.parquet: Read-only file system"):
        write_parquet_atomic(_problems(4, seed=3), out / "shard-00000.parquet")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == published


def test_a_data_root_that_cannot_be_created_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = DataRoot(tmp_path / "not-writable")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StorageError, match="not-writable.*Permission denied.*not writable by this user"):
        root.write_table("problems", _problems(1))
    monkeypatch.undo()
    assert not root.path.exists()


def test_temporaries_of_a_killed_writer_are_swept_and_a_live_writers_are_not(tmp_path: Path) -> None:
    directory = tmp_path / "tables" / "problems"
    directory.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale_file = directory / f".data.parquet.tmp-{dead_pid}-0badc0de"
    stale_file.write_bytes(b"PAR1 half a file")
    stale_dir = directory / f".hf_dataset.old-{dead_pid}-0badc0de"
    stale_dir.mkdir()
    (stale_dir / "data-00000.arrow").write_bytes(b"x")
    live = directory / f".data.parquet.tmp-{os.getpid()}-00c0ffee"
    live.write_bytes(b"being written")
    assert set(sweep_stale_temps(directory)) == {stale_file, stale_dir}
    assert live.exists() and not stale_file.exists() and not stale_dir.exists()

    # The catalog refresh, which ends every run, sweeps the whole root.
    live.unlink()
    (directory / f".data.parquet.tmp-{dead_pid}-feedface").write_bytes(b"x")
    refresh_catalog(DataRoot(tmp_path))
    assert not partial_files(tmp_path)
