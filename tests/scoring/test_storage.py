"""The data root: atomic Parquet tables, idempotent upserts, a real DuckDB catalog, safe path names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engines.errors import ConfigError
from scoring import delta_tables
from scoring.catalog import connect_catalog, refresh_catalog
from scoring.errors import StorageError
from scoring.schemas import DIFFICULTY, PROBLEMS, REJECTS, ROLLOUT_KEY, ROLLOUTS, VERDICT_AUDIT, to_table
from scoring.storage import DataRoot


def _rollouts(indices: list[int], verdict: str = "correct") -> pa.Table:
    return to_table(
        [
            {
                "problem_id": "p",
                "student_id": "s",
                "student_revision": "r",
                "sampling_hash": "h",
                "sample_index": i,
                "completion": f"c{i}",
                "verdict": verdict,
                "verifier_version": "v",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "finish_reason": "stop",
                "latency_s": 0.1,
            }
            for i in indices
        ],
        ROLLOUTS,
    )


def test_upsert_adds_new_keys_and_never_duplicates(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    root.upsert_table("rollouts", _rollouts([0, 1]), ROLLOUT_KEY, {"student": "s"})
    added = root.upsert_table("rollouts", _rollouts([1, 2, 3], verdict="wrong"), ROLLOUT_KEY, {"student": "s"})
    assert added.column("sample_index").to_pylist() == [2, 3], "the upsert returns only the rows it added"
    merged = root.read_table("rollouts", {"student": "s"})
    assert merged.column("sample_index").to_pylist() == [0, 1, 2, 3]
    assert merged.column("verdict").to_pylist() == ["correct", "correct", "wrong", "wrong"]
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name], "no temp files left behind"


def test_catalog_views_are_queryable_from_a_real_duckdb_file(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    root.write_table("rollouts", _rollouts([0, 1, 2]), {"student": "s"})
    root.write_table("rejects", to_table([{"stage": "import", "input_ref": "f:2", "reason": "bad"}], REJECTS))
    assert set(refresh_catalog(root)) == {"rollouts", "rejects"}
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        assert con.execute("select count(*), min(student) from rollouts").fetchone() == (3, "s")
        assert con.execute("select input_ref from rejects").fetchone() == ("f:2",)


def _hold_catalog_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that opens the catalog for writing, says so, and keeps it `seconds` long."""
    script = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
        "con.close()"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_the_catalog_waits_while_another_process_holds_its_write_lock(tmp_path: Path) -> None:
    # A concurrent run refreshing its views holds DuckDB's file lock; a reader or a second refresh must wait for it
    # rather than fail the run (a `gradus run` once exited 1 after a successful run, at its closing query).
    root = DataRoot(tmp_path)
    root.write_table("rollouts", _rollouts([0, 1]), {"student": "s"})
    refresh_catalog(root)
    holder = _hold_catalog_lock(root.catalog_path, seconds=2)
    try:
        with pytest.raises(duckdb.IOException):
            duckdb.connect(str(root.catalog_path), read_only=True).close()  # what the retry is for
        with connect_catalog(root) as con:
            assert con.execute("select count(*) from rollouts").fetchone() == (2,)
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()
    holder = _hold_catalog_lock(root.catalog_path, seconds=60)
    try:
        with pytest.raises(duckdb.IOException):  # a lock that outlasts the retries is still an error
            connect_catalog(root, attempts=2).close()
    finally:
        holder.kill()
        holder.wait()


def test_writes_cast_to_the_declared_schema(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    loose = pa.table({"reason": ["r"], "stage": ["s"], "input_ref": ["i"], "raw_text": [None]})
    root.write_table("rejects", loose)
    assert root.read_table("rejects").schema == REJECTS
    with pytest.raises(ConfigError, match="unknown table"):
        root.write_table("nope", loose)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "", "x" * 200])
def test_path_traversal_in_partition_names_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match="not a safe name"):
        DataRoot(tmp_path).table_path("rollouts", {"student": bad})


def test_disagreements_view_lists_samples_whose_checkers_differ(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    key = {"problem_id": "p", "student_id": "s", "student_revision": "r", "sampling_hash": "h"}
    rows = [
        {**key, "sample_index": 0, "rule": "family:fractions", "verdict": "correct", "reason": "3/4 == 0.75"},
        {**key, "sample_index": 0, "rule": "exact_match", "verdict": "wrong", "reason": "text differs"},
        {**key, "sample_index": 1, "rule": "family:fractions", "verdict": "correct", "reason": "same"},
        {**key, "sample_index": 1, "rule": "exact_match", "verdict": "correct", "reason": "same"},
    ]
    root.write_table("verdict_audit", to_table(rows, VERDICT_AUDIT), {"student": "s"})
    assert "disagreements" in refresh_catalog(root)
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        found = con.execute("select sample_index, verdicts['exact_match'] from disagreements").fetchall()
    assert found == [(0, "wrong")]


def _problems(ids: list[str]) -> pa.Table:
    return to_table([{"problem_id": i, "question": f"q {i}", "answer": "1", "source": "t"} for i in ids], PROBLEMS)


def _grade(revision: str, pass_rate: float) -> pa.Table:
    row = {"problem_id": "p", "student_id": "s", "student_revision": revision, "sampling_hash": "h"}
    return to_table(
        [row | {"verifier_version": "v", "n": 8, "k": int(8 * pass_rate), "pass_rate": pass_rate}], DIFFICULTY
    )


def test_an_earlier_version_of_difficulty_stays_readable_after_a_regrade(tmp_path: Path) -> None:
    """Time travel: the difficulty table as it was before the re-grade, by version number from its history."""
    root = DataRoot(tmp_path)
    root.write_table("difficulty", _grade("r1", 0.25), {"student": "s"})
    root.write_table("difficulty", _grade("r2", 0.75), {"student": "s"})
    history = root.table_history("difficulty")
    assert [h["version"] for h in history] == [1, 0] and all(h["operation"] == "WRITE" for h in history)
    assert root.read_table("difficulty", {"student": "s"}).column("pass_rate").to_pylist() == [0.75]
    before = root.read_table("difficulty", {"student": "s"}, version=0)
    assert before.column("student_revision").to_pylist() == ["r1"] and before.column("pass_rate").to_pylist() == [0.25]
    with duckdb.connect() as con:  # the old version's files are plain Parquet a stock DuckDB reads
        files = root.table_files("difficulty", version=0)
        assert con.execute("select pass_rate from read_parquet($1)", [files]).fetchall() == [(0.25,)]


def test_replacing_one_partition_leaves_the_others(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    root.write_table("difficulty", _grade("r1", 0.25), {"student": "a"})
    root.write_table("difficulty", _grade("r1", 0.5), {"student": "b"})
    root.write_table("difficulty", _grade("r2", 1.0), {"student": "a"})
    assert root.read_table("difficulty", {"student": "b"}).column("pass_rate").to_pylist() == [0.5]
    assert sorted(root.read_all_partitions("difficulty").column("pass_rate").to_pylist()) == [0.5, 1.0]
    with pytest.raises(StorageError, match="partitioned by"):
        root.write_table("difficulty", _grade("r1", 0.5))


def test_appends_are_compacted_and_keep_every_row(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    for i in range(delta_tables.COMPACT_AT_FILES + 3):
        root.upsert_table("rollouts", _rollouts([i]), ROLLOUT_KEY, {"student": "s"})
    files = root.table_files("rollouts", {"student": "s"})
    assert len(files) < delta_tables.COMPACT_AT_FILES, "small files were bin-packed"
    stored = root.read_table("rollouts", {"student": "s"}).column("sample_index").to_pylist()
    assert stored == list(range(delta_tables.COMPACT_AT_FILES + 3))
    assert any(h["operation"] == "OPTIMIZE" for h in root.table_history("rollouts"))


APPENDER = """
import sys
from pathlib import Path
from scoring.schemas import ROLLOUT_KEY
from scoring.storage import DataRoot
from tests.scoring.test_storage import _rollouts
root, first = DataRoot(Path(sys.argv[1])), int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
for start in range(first, first + 60, 3):
    root.upsert_table("rollouts", _rollouts(list(range(start, start + 6))), ROLLOUT_KEY, {"student": "s"})
"""


def test_two_processes_appending_the_same_table_store_every_row_exactly_once(tmp_path: Path) -> None:
    """Two writers at once adding the same keys in the same order (each batch of 6 also repeats 3 of the
    previous one): every key lands, none twice. Without the writer lock both pass the anti-join and duplicate."""
    repo = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(tmp_path), str(first)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=repo,
        )  # fmt: skip
        for first in (0, 0)
    ]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.wait(timeout=300) == 0
    stored = DataRoot(tmp_path).read_table("rollouts", {"student": "s"}).column("sample_index").to_pylist()
    assert stored == list(range(60 + 3)), "every key exactly once"


def test_a_data_root_from_before_delta_is_migrated_in_place(tmp_path: Path) -> None:
    """Tables written by the previous version (one `data.parquet` per partition, a column added since missing)
    are rewritten as Delta tables the first time they are touched; every row survives and reads as before."""
    legacy = tmp_path / "tables" / "rollouts" / "student=s"
    legacy.mkdir(parents=True)
    old = _rollouts([0, 1]).drop_columns(["verifier_rule"])  # written before `verifier_rule` existed
    pq.write_table(old, legacy / "data.parquet")
    (tmp_path / "tables" / "problems").mkdir(parents=True)
    pq.write_table(_problems(["a", "b"]), tmp_path / "tables" / "problems" / "data.parquet")
    root = DataRoot(tmp_path)
    stored = root.read_table("rollouts", {"student": "s"})
    assert stored.column("sample_index").to_pylist() == [0, 1] and stored.column("verifier_rule").null_count == 2
    assert not (legacy / "data.parquet").exists() and (tmp_path / "tables" / "rollouts" / "_delta_log").is_dir()
    root.upsert_table("rollouts", _rollouts([1, 2]), ROLLOUT_KEY, {"student": "s"})
    assert root.read_table("rollouts", {"student": "s"}).column("sample_index").to_pylist() == [0, 1, 2]
    assert set(refresh_catalog(root)) >= {"rollouts", "problems"}
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        assert con.execute("select count(*) from problems").fetchone() == (2,)


def test_a_migration_killed_after_its_commit_finishes_without_duplicating(tmp_path: Path) -> None:
    directory = tmp_path / "tables" / "problems"
    directory.mkdir(parents=True)
    pq.write_table(_problems(["a", "b"]), directory / "data.parquet")
    delta_tables.migrate_legacy(directory, PROBLEMS)
    pq.write_table(_problems(["a", "b"]), directory / "data.parquet")  # as if killed before the old file went
    root = DataRoot(tmp_path)
    assert root.read_table("problems").column("problem_id").to_pylist() == ["a", "b"]
    assert not (directory / "data.parquet").exists()


def test_an_empty_table_still_has_a_view(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    root.upsert_table("rollouts", _rollouts([]), ROLLOUT_KEY, {"student": "s"})
    assert "rollouts" in refresh_catalog(root)
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        assert con.execute("select count(*) from rollouts where student = 's'").fetchone() == (0,)
