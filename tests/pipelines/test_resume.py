"""A run killed with SIGKILL mid-rollouts resumes: the rerun pays only for samples the cache lacks, and the
tables end complete, without duplicates and without partial files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL, cached_completions, small_model_project


def _project(session_root: Path, tmp_path: Path, config: dict) -> tuple[Path, Path, str, dict[str, str]]:
    """A data root reusing the session's assembled model, the config written beside it, the `gradus` CLI and an
    environment with a private DAGSTER_HOME: (root, config path, gradus, env)."""
    root, config_path = small_model_project(session_root, tmp_path, **config)
    gradus = str(Path(sys.executable).parent / "gradus")
    return root, config_path, gradus, {**os.environ, "DAGSTER_HOME": str(tmp_path)}


def test_sigkill_during_rollouts_then_resume(session_root: Path, tmp_path: Path) -> None:
    config = {
        "student": {"id": "resume-test", "engine": {"model": SMALL_MODEL, "n_ctx": 512}},
        "sources": {"procedural": [{"family": "arithmetic", "levels": [1, 2], "per_level": 2, "seed": 7}]},
        "rollouts": {"k": 2, "max_tokens": 48, "seed": 1},
        "curriculum": {"shard_size": 2},
    }
    root, config_path, gradus, env = _project(session_root, tmp_path, config)
    cache = root / "cache" / "completions.sqlite"

    proc = subprocess.Popen(
        [gradus, "run", "--config", str(config_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while cached_completions(cache) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done_before_kill = cached_completions(cache)
    assert 2 <= done_before_kill < 8, "the kill must land mid-rollouts"
    assert not (root / "shards").exists(), "nothing downstream was published by the killed run"

    rerun = subprocess.run(
        [gradus, "run", "--config", str(config_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    calls, hits = map(int, re.search(r"model calls (\d+), cache hits (\d+)", rerun.stdout).groups())  # type: ignore[union-attr]
    assert hits >= done_before_kill and calls + hits == 8
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name], "no partial files under the data root"
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        total, distinct = con.execute(
            "select count(*), count(distinct (problem_id, sample_index)) from rollouts"
        ).fetchone()
    assert total == distinct == 8


def test_sigkill_during_adaptive_grading_resumes_from_stored_rounds(session_root: Path, tmp_path: Path) -> None:
    config = {
        "student": {"id": "resume-adaptive", "engine": {"model": SMALL_MODEL, "n_ctx": 512}},
        "sources": {"procedural": [{"family": "arithmetic", "levels": [1, 2, 3], "per_level": 2, "seed": 11}]},
        "rollouts": {"max_tokens": 24, "seed": 2, "prompt": "answer_only_v1"},
        "grading": {"mode": "adaptive", "adaptive": {"min_k": 2, "max_k": 4, "round_size": 1}},
        "curriculum": {"shard_size": 2},
    }
    root, config_path, gradus, env = _project(session_root, tmp_path, config)
    cache = root / "cache" / "completions.sqlite"
    stored_dir = root / "tables" / "rollouts"

    def stored_rows() -> int:  # rows committed to the student's partition so far (the Delta table's current files)
        return DataRoot(root).read_table("rollouts", {"student": "resume-adaptive"}, columns=["problem_id"]).num_rows

    proc = subprocess.Popen(
        [gradus, "run", "--config", str(config_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (stored_dir / "_delta_log").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    while proc.poll() is None and time.monotonic() < deadline and not stored_rows():
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the first round is stored; later rounds are not finished
    proc.wait(30)
    rows_at_kill = stored_rows()
    assert rows_at_kill, "the first round was stored before the kill"
    done_before_kill = cached_completions(cache)
    assert rows_at_kill >= 12 and done_before_kill >= rows_at_kill

    rerun = subprocess.run(
        [gradus, "run", "--config", str(config_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    calls, hits = map(int, re.search(r"model calls (\d+), cache hits (\d+)", rerun.stdout).groups())  # type: ignore[union-attr]
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name], "no partial files under the data root"
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        total, distinct = con.execute(
            "select count(*), count(distinct (problem_id, sample_index)) from rollouts"
        ).fetchone()
        methods = con.execute("select distinct method from difficulty").fetchall()
    assert total == distinct, "no rollout stored twice"
    # stored rounds were not drawn again; the cut-off round came from the cache; every sample was paid once
    assert hits <= done_before_kill - rows_at_kill and calls + hits == total - rows_at_kill
    assert cached_completions(cache) == total, "the cache and the rollouts table agree"
    assert methods == [("adaptive_v1",)]
