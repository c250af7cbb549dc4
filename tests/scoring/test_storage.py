"""The data root: atomic Parquet tables, idempotent upserts, a real DuckDB catalog, safe path names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from engines.errors import ConfigError
from scoring.catalog import connect_catalog, refresh_catalog
from scoring.schemas import REJECTS, ROLLOUT_KEY, ROLLOUTS, VERDICT_AUDIT, to_table
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
    merged = root.upsert_table("rollouts", _rollouts([1, 2, 3], verdict="wrong"), ROLLOUT_KEY, {"student": "s"})
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
