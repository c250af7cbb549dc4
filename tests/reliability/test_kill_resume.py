"""SIGKILL at seeded points in the stages `tests/pipelines/test_resume.py` does not cover — dedup, curriculum
shards, exports, ScaleQuest synthesis, the trainer — then rerun: the final tables equal an uninterrupted run's
row for row, nothing partial is left under the data root, every Parquet file reads, and the cache means no
sample is paid for twice.

The uninterrupted reference run uses a copy of the resumed run's completion cache, so it makes no model calls:
it proves that kill + resume produced what a clean run produces from the same samples (the samples themselves
are seeded, and `test_resume.py` shows resumed rollouts match).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import duckdb
import pytest

from scoring.catalog import refresh_catalog
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL, cached_completions, small_model_project, trainer_project
from tests.reliability.killing import (
    copy_cache,
    kill_when,
    partial_files,
    run_child,
    table_rows,
    unreadable_parquet,
)

SEED = 20261126
# Arithmetic at knobs 1 and 3 with answer-only rollouts: 8 short samples, and at temperature 1.0 the 0.5B
# model gets some right and some wrong, so a shard is written.
PIPELINE = {
    "student": {"id": "killed", "engine": {"model": SMALL_MODEL, "n_ctx": 512}},
    "sources": {"procedural": [{"family": "arithmetic", "levels": [1, 3], "per_level": 2, "seed": 3}]},
    "rollouts": {"k": 2, "max_tokens": 12, "seed": 1, "prompt": "answer_only_v1", "temperature": 1.0},
    "curriculum": {"shard_size": 1},
    "trainer": {"enabled": False},
}
SAMPLES = 8


def _calls(stdout: str, node: str = "") -> tuple[int, int]:
    match = re.search(rf"{node}.*?model calls (\d+), cache hits (\d+)", stdout)
    assert match, stdout
    return int(match[1]), int(match[2])


def _published(root: Path) -> dict[str, list[tuple]]:
    return {**table_rows(root, "tables"), **table_rows(root, "shards"), **table_rows(root, "exports")}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pipeline_killed_in_dedup_shards_and_exports_resumes_to_the_same_tables(
    session_root: Path, tmp_path: Path
) -> None:
    root, config = small_model_project(session_root, tmp_path / "killed", **PIPELINE)
    cache = DataRoot(root).cache_path
    rng = random.Random(SEED)
    # One kill per stage, each before or after its publish (seeded): before leaves a finished temporary file
    # beside the old version; after leaves the new version with everything downstream missing.
    plan = [
        ("tables/duplicates/", rng.choice(["before", "after"])),
        (rng.choice(["shards/killed/easy_to_hard_v1/shard-", "shards/killed/easy_to_hard_v1/manifest.json"]), "before"),
        (rng.choice(["exports/killed/easy_to_hard_v1/verl/", "exports/killed/easy_to_hard_v1/hf_dataset"]), "after"),
    ]
    for prefix, when in plan:
        run = run_child(config, root, kill_on=prefix, when=when)
        assert run.killed, f"the kill at {prefix} ({when}) did not land:\n{run.stdout}\n{run.stderr}"
        assert run.publishes[-1].target.startswith(prefix)
        assert not unreadable_parquet(root), "a published Parquet file is unreadable after SIGKILL"
        if when == "before":
            assert partial_files(root), "the kill landed between the temporary write and its rename"

    cached_before = cached_completions(cache)
    final = run_child(config, root)
    assert final.returncode == 0, final.stdout + final.stderr
    calls, hits = _calls(final.stdout)
    assert calls + hits == SAMPLES and calls == SAMPLES - cached_before, "a cached sample was paid for again"
    assert cached_completions(cache) == SAMPLES
    assert not partial_files(root), f"partial files left: {partial_files(root)}"
    assert not unreadable_parquet(root)
    assert list((root / "shards" / "killed" / "easy_to_hard_v1").glob("shard-*.parquet")), "a shard was written"

    reference, reference_config = small_model_project(session_root, tmp_path / "reference", **PIPELINE)
    copy_cache(root, reference)
    clean = run_child(reference_config, reference)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert _calls(clean.stdout) == (0, SAMPLES)
    assert _published(root) == _published(reference), "kill + resume changed a table"
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        for table, key in [("problems", "problem_id"), ("rollouts", "problem_id, sample_index")]:
            total, distinct = con.execute(f"select count(*), count(distinct ({key})) from {table}").fetchone()
            assert total == distinct > 0, f"{table} has duplicate keys"
        in_shards = con.execute("select count(*), count(distinct problem_id) from shards").fetchone()
        assert in_shards[0] == in_shards[1] > 0


# Two questions with short caps: 3 completions on the small model (two questions, one solvability check — the
# other question is cut by the language filter), so the killed run, the resume and the reference stay cheap.
SCALEQUEST = {
    "student": {"id": "synth", "engine": {"model": SMALL_MODEL, "n_ctx": 512}},
    "rollouts": {"k": 1, "max_tokens": 8, "prompt": "answer_only_v1"},
    "synthesis": {
        "answers": {"k": 1, "min_votes": 1, "max_tokens": 16},
        "scalequest": {
            "enabled": True,
            "questions": 2,
            "max_question_tokens": 64,
            "solvability_max_tokens": 16,
            "responses": 1,
            "max_response_tokens": 24,
            "seed": 5,
        },
    },
    "trainer": {"enabled": False},
}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_scalequest_killed_mid_synthesis_resumes_without_paying_twice(session_root: Path, tmp_path: Path) -> None:
    root, config = small_model_project(session_root, tmp_path / "killed", **SCALEQUEST)
    cache = DataRoot(root).cache_path
    kill_after = random.Random(SEED).randint(1, 2)  # completions cached when the kill lands
    assert kill_when(config, root, lambda: cached_completions(cache) >= kill_after, selection=["scalequest_problems"])
    cached_before = cached_completions(cache)
    assert cached_before >= kill_after
    assert not (root / "tables" / "synthesized_problems").exists(), "nothing is published before the stage ends"
    assert not unreadable_parquet(root)

    resumed = run_child(config, root, selection=["scalequest_problems"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    calls, hits = _calls(resumed.stdout, "scalequest_problems")
    assert hits >= cached_before, "completions made before the kill were not reused"
    assert calls == cached_completions(cache) - cached_before, "every new call is a sample the cache lacked"
    assert not partial_files(root)

    reference, reference_config = small_model_project(session_root, tmp_path / "reference", **SCALEQUEST)
    copy_cache(root, reference)
    clean = run_child(reference_config, reference, selection=["scalequest_problems"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert _calls(clean.stdout, "scalequest_problems")[0] == 0
    resumed_rows, clean_rows = table_rows(root), table_rows(reference)
    assert resumed_rows == clean_rows and any("synthesis_log" in name for name in resumed_rows)
    log = resumed_rows[next(name for name in resumed_rows if "synthesis_log" in name)]
    assert len(log) == len(set(log)), "no synthesis decision recorded twice"


def _training_record(root: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        return {
            "steps": con.execute("select step from training_steps order by step").fetchall(),
            "consumed": con.execute("select step, position from training_consumption order by all").fetchall(),
            "evidence": con.execute(
                "select problem_id, count(*), count(distinct sample_index) from rollouts "
                "where student_id = 'tiny-train' group by all order by all"
            ).fetchall(),
            "graded": con.execute(
                "select problem_id, n from difficulty where student_id = 'tiny-train' order by 1"
            ).fetchall(),
        }


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_trainer_killed_before_its_run_is_recorded_trains_again_without_duplicating_evidence(
    tmp_path: Path, smollm2_gguf: Path
) -> None:
    root, config = trainer_project(tmp_path / "killed", smollm2_gguf)
    # The evidence is written first and the run's own tables last (their presence marks the run complete), so a
    # kill just before `training_steps` is published leaves evidence behind and an unfinished run.
    when = random.Random(SEED).choice(["before", "after"])
    prefix = "tables/training_consumption/" if when == "after" else "tables/training_steps/"
    run = run_child(config, root, kill_on=prefix, when=when, selection=["trainer"])
    assert run.killed, f"the kill at {prefix} ({when}) did not land:\n{run.stdout}\n{run.stderr}"
    assert not unreadable_parquet(root)

    resumed = run_child(config, root, selection=["trainer"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert not partial_files(root), f"partial files left: {partial_files(root)}"
    assert not unreadable_parquet(root)
    refresh_catalog(DataRoot(root))
    record = _training_record(root)
    assert record["steps"] == [(1,), (2,)]
    assert record["evidence"] and all(n == distinct for _, n, distinct in record["evidence"]), "duplicate evidence"

    reference, reference_config = trainer_project(tmp_path / "reference", smollm2_gguf)
    clean = run_child(reference_config, reference, selection=["trainer"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    refresh_catalog(DataRoot(reference))
    assert record == _training_record(reference), "kill + resume trained on another order or left other evidence"

    again = run_child(config, root, selection=["trainer"])  # the run is recorded now: reused, not retrained
    assert again.returncode == 0 and _training_record(root) == record
