"""Scheduled re-grading and the checkpoint sensor, on a real Dagster instance: a checkpoint dropped into the
watched directory is registered, launched once, and its re-grade run grades the pool for the new student."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from engines.errors import ConfigError
from engines.models import EMBEDDED_MODELS, ensure_model
from pipelines.definitions import build_definitions
from pipelines.materialize import add_student
from scoring.checkpoints import read_registry
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL, linked_data_root, write_project


def _project(tmp_path: Path, **regeneration: object) -> Path:
    return write_project(
        tmp_path,
        tmp_path / "root",
        student={"id": "base", "engine": {"model": SMALL_MODEL, "n_ctx": 1024}},
        sources={"procedural": [{"family": "arithmetic", "levels": [1], "per_level": 2, "seed": 0}]},
        rollouts={"k": 2, "max_tokens": 16, "prompt": "answer_only_v1"},
        regeneration=regeneration,
    )


@dataclass
class Tick:
    run_requests: list[dg.RunRequest]
    dynamic_partitions_requests: list[object]
    cursor: str | None
    skip_message: str | None


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Tick:
    """One sensor evaluation. Called directly: `evaluate_tick` would reject a run for a partition that the same
    result adds, which the daemon applies first."""
    sensor = defs.resolve_sensor_def("checkpoint_sensor")
    result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))
    if isinstance(result, dg.SkipReason):
        return Tick([], [], cursor, result.skip_message)
    return Tick(list(result.run_requests or []), list(result.dynamic_partitions_requests or []), result.cursor, None)


def test_sensor_launches_each_new_or_changed_checkpoint_once(tmp_path: Path) -> None:
    watched = tmp_path / "checkpoints"
    watched.mkdir()
    defs = build_definitions(_project(tmp_path, checkpoints={"directory": str(watched), "min_age_s": 0}))
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))  # schedules read the instance by ref
    first = _tick(defs, instance, None)
    assert first.run_requests == [] and "no new checkpoint" in first.skip_message

    (watched / "step-100.gguf").write_bytes(b"weights 100")
    (watched / ".step-200.gguf.tmp").write_bytes(b"half written")  # an atomic writer's temp file: ignored
    tick = _tick(defs, instance, None)
    [request] = tick.run_requests
    assert defs.resolve_sensor_def("checkpoint_sensor").job_name == "regrade"
    assert request.tags["gradus/student"] == "step-100"
    assert request.partition_key == "step-100" and request.tags["gradus/checkpoint"] == str(watched / "step-100.gguf")
    assert [e["student_id"] for e in read_registry(DataRoot(tmp_path / "root"))] == ["step-100"]

    assert _tick(defs, instance, tick.cursor).run_requests == [], "the cursor remembers step-100"
    (watched / "step-200.gguf").write_bytes(b"weights 200")
    os.utime(watched / "step-100.gguf", ns=(1, 1))  # rewritten in place: a changed signature is new again
    again = _tick(defs, instance, tick.cursor)
    assert sorted(r.tags["gradus/student"] for r in again.run_requests) == ["step-100", "step-200"]
    assert len({r.run_key for r in [*tick.run_requests, *again.run_requests]}) == 3

    # the schedule re-grades the most recently registered checkpoint, once it is a partition
    schedule = defs.resolve_schedule_def("regrade_schedule")
    skipped = schedule.evaluate_tick(
        dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
    )
    assert skipped.run_requests == [] and "not a partition yet" in skipped.skip_message
    for student in ("step-100", "step-200"):
        add_student(instance, student)
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        [scheduled] = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def())
        ).run_requests
    assert scheduled.partition_key in {"step-100", "step-200"}


def test_young_checkpoints_wait_and_a_missing_directory_is_named(tmp_path: Path) -> None:
    watched = tmp_path / "checkpoints"
    watched.mkdir()
    (watched / "step-1.gguf").write_bytes(b"still being written")
    defs = build_definitions(_project(tmp_path, checkpoints={"directory": str(watched), "min_age_s": 3600}))
    assert _tick(defs, dg.DagsterInstance.ephemeral(), None).run_requests == []
    missing = build_definitions(_project(tmp_path, checkpoints={"directory": str(tmp_path / "nowhere")}))
    tick = _tick(missing, dg.DagsterInstance.ephemeral(), None)
    assert "nowhere" in tick.skip_message and "is not a directory" in tick.skip_message
    with pytest.raises(ConfigError, match="regeneration.schedule.cron"):
        build_definitions(_project(tmp_path, schedule={"cron": "every day"}))


def test_a_new_checkpoint_is_graded_as_its_own_student(session_root: Path, tmp_path: Path) -> None:
    watched = tmp_path / "checkpoints"
    watched.mkdir()
    gguf = ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    linked_data_root(tmp_path / "root", session_root / "models")
    defs = build_definitions(_project(tmp_path, checkpoints={"directory": str(watched), "min_age_s": 0}))
    instance = dg.DagsterInstance.ephemeral()
    add_student(instance, "base")
    assert defs.resolve_job_def("build_all").execute_in_process(instance=instance, partition_key="base").success
    (watched / "student-v2.gguf").symlink_to(gguf)
    tick = _tick(defs, instance, None)
    [request] = tick.run_requests
    [added] = tick.dynamic_partitions_requests
    assert added.partitions_def_name == "students" and list(added.partition_keys) == ["student-v2"]
    add_student(instance, "student-v2")  # what the daemon does with the request
    run = defs.resolve_job_def("regrade").execute_in_process(partition_key=request.partition_key, instance=instance)
    assert run.success
    root = DataRoot(tmp_path / "root")
    graded = root.read_table("difficulty", {"student": "student-v2"})
    assert graded.num_rows == 2 and set(graded.column("student_id").to_pylist()) == {"student-v2"}
    manifest = json.loads((root.shards_dir / "student-v2" / "easy_to_hard_v1" / "manifest.json").read_text())
    assert manifest["student_id"] == "student-v2"
    assert root.read_table("difficulty", {"student": "base"}).num_rows == 2, "the base student's grades stay"
