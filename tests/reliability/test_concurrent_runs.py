"""Two `gradus run`s of the same project on the same data root at once (Dagster lets two runs materialize the
same asset concurrently): both finish, and afterwards every Parquet table reads, no key is stored twice, the
DuckDB catalog opens and answers, and the SQLite cache is intact with each sample stored once.

Why it holds: every table, shard and manifest is written to a private temporary name and renamed into place
(last writer wins with a complete file, and both runs compute the same rows from the same seeds); export
directories are swapped with a retry when the other run publishes in between; the catalog refresh retries on
DuckDB's file lock; the cache is SQLite in WAL mode with `INSERT OR IGNORE`.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from scoring.storage import DataRoot
from scoring.training import exports
from tests.conftest import SMALL_MODEL, cached_completions, small_model_project
from tests.reliability.killing import (
    REPO,
    partial_files,
    run_child,
    table_rows,
    unreadable_parquet,
)

TWIN = {
    "student": {"id": "twin", "engine": {"model": SMALL_MODEL, "n_ctx": 512}},
    "sources": {"procedural": [{"family": "arithmetic", "levels": [1, 2], "per_level": 1, "seed": 9}]},
    "rollouts": {"k": 2, "max_tokens": 8, "seed": 4, "prompt": "answer_only_v1", "temperature": 1.0},
    "curriculum": {"shard_size": 1},
    "trainer": {"enabled": False},
}
SAMPLES = 4


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_runs_on_one_data_root_at_once_leave_consistent_tables(session_root: Path, tmp_path: Path) -> None:
    root, config = small_model_project(session_root, tmp_path / "twin", **TWIN)
    # Both runs share one fresh DAGSTER_HOME (the children use root.parent): `gradus run` creates the instance
    # under a file lock, else both could stamp the run storage's schema version (see RELIABILITY.md).
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_child(config, root), range(2)))
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr
    assert not partial_files(root), partial_files(root)
    assert not unreadable_parquet(root)

    cache = DataRoot(root).cache_path
    with sqlite3.connect(cache) as con:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
    assert cached_completions(cache) == SAMPLES, "each sample is stored once"
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        for table, key in [
            ("problems", "problem_id"),
            ("rollouts", "problem_id, sample_index"),
            ("difficulty", "problem_id, student_id, student_revision"),
            ("curriculum", "problem_id, strategy"),
        ]:
            total, distinct = con.execute(f"select count(*), count(distinct ({key})) from {table}").fetchone()
            assert total == distinct > 0, f"{table}: {total} rows, {distinct} keys"
        assert con.execute("select sum(n) from difficulty").fetchone()[0] == SAMPLES

    # A third run after both: the state they left is the state a single run leaves, and costs no model call.
    before = table_rows(root)
    third = run_child(config, root)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "model calls 0, cache hits 4" in third.stdout
    assert table_rows(root) == before


def test_an_export_published_by_another_run_mid_swap_is_set_aside_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the two-run test can hit by chance, made to happen: between our setting the old export aside and
    renaming ours in, the other run renames its copy in. Ours then fails with ENOTEMPTY, sets theirs aside and
    lands; no set-aside directory is left behind."""
    target = tmp_path / "hf_dataset"
    for name in ("hf_dataset", ".ours", ".theirs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.arrow").write_text(name)
    real = os.replace
    calls = []

    def racing_replace(src: object, dst: object) -> None:
        calls.append((Path(str(src)).name, Path(str(dst)).name))
        real(src, dst)
        if len(calls) == 1:  # we just set the old export aside: the other run publishes now
            real(tmp_path / ".theirs", target)

    monkeypatch.setattr(exports.os, "replace", racing_replace)
    exports.replace_dir(tmp_path / ".ours", target)
    assert (target / "data.arrow").read_text() == ".ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf_dataset"]
    assert len(calls) == 4  # aside, ENOTEMPTY, theirs aside, ours in


_OPEN_INSTANCE = """
import sys, time
from pathlib import Path
from pipelines.cli import _instance
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # all processes start creating at the same moment
_instance(Path(sys.argv[2])).dispose()
"""


def test_runs_creating_a_fresh_dagster_home_at_once_leave_it_usable(tmp_path: Path) -> None:
    # Without the lock in `pipelines.cli._instance`, 1 in 3 such starts left a home whose every later run failed
    # ("more than one head present"); three rounds of three processes make a regression very likely to show.
    for round_no in range(3):
        home = tmp_path / f"home{round_no}"
        env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
        start = time.time() + 4.0  # after every interpreter has imported dagster
        children = [
            subprocess.Popen([sys.executable, "-c", _OPEN_INSTANCE, str(start), str(tmp_path / "gradus.yaml")], env=env)
            for _ in range(3)
        ]
        assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
        check = subprocess.run(
            [sys.executable, "-c", "import dagster as dg; i = dg.DagsterInstance.get(); print(len(i.get_runs()))"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0 and check.stdout.strip() == "0", check.stderr[-2000:]
