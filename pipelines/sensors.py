"""Sensors: new student checkpoints are registered and re-graded; new synthesized problems are graded.

- `checkpoint_sensor` (when `regeneration.checkpoints` is set): each tick, finds new checkpoints in the watched
  directory, registers each as a student (`students.json` under the data root), adds it as a partition of the
  student-partitioned assets and launches a re-grade of that partition; the cursor remembers what was seen, so a
  checkpoint is launched once.
- `grade_new_problems`: after `synthesize_more` or a Socratic round succeeds, `build_all` runs for the student.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg

from assets.partitions import STUDENTS
from engines.errors import ConfigError
from pipelines.jobs import build_all, regrade, socratic, synthesize_more
from scoring.checkpoints import new_checkpoints, register
from scoring.config import load_config, resolve_data_root


def build_sensors(config_path: Path) -> list[dg.SensorDefinition]:
    """The checkpoint sensor (when configured) and the chaining sensor of one project config."""
    return [*_checkpoint_sensors(config_path), _grade_new_problems(config_path)]


def _checkpoint_sensors(config_path: Path) -> list[dg.SensorDefinition]:
    settings = load_config(config_path).regeneration
    sensors: list[dg.SensorDefinition] = []
    watch = settings.checkpoints
    if watch is not None:

        @dg.sensor(
            job=regrade,
            minimum_interval_seconds=settings.sensor_interval_s,
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=f"New student checkpoints in {watch.directory} ({watch.pattern}) are registered and re-graded.",
        )
        def checkpoint_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
            seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
            current = load_config(config_path)
            try:
                found = new_checkpoints(watch, seen, time.time(), Path(current.base_dir))
            except ConfigError as exc:
                return dg.SkipReason(str(exc))
            if not found:
                return dg.SkipReason(f"no new checkpoint in {watch.directory}")
            root = resolve_data_root(current)
            requests = []
            for checkpoint in found:
                register(root, checkpoint)
                seen[checkpoint.model] = checkpoint.signature
                requests.append(
                    dg.RunRequest(
                        run_key=f"{checkpoint.student_id}:{checkpoint.signature}",
                        partition_key=checkpoint.student_id,
                        tags={"gradus/student": checkpoint.student_id, "gradus/checkpoint": checkpoint.model},
                    )
                )
            students = sorted({r.partition_key for r in requests if r.partition_key})
            return dg.SensorResult(
                run_requests=requests,
                dynamic_partitions_requests=[STUDENTS.build_add_request(students)],
                cursor=json.dumps(seen, sort_keys=True),
            )

        sensors.append(checkpoint_sensor)
    return sensors


def _grade_new_problems(config_path: Path) -> dg.SensorDefinition:
    """Launch `build_all` for the student after `synthesize_more` or a Socratic round succeeds."""
    configured_student = load_config(config_path).student.id

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[synthesize_more, socratic],
        request_job=build_all,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After synthesize_more (or a Socratic round) succeeds, rebuild the student's data so the new "
        "problems are deduplicated, decontaminated, graded and placed in the curriculum.",
    )
    def grade_new_problems(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        run = context.dagster_run
        # synthesize_more is partitioned by student; a Socratic run's partition is a round, so its student is the
        # configured one (or the one its launcher tagged).
        if run.job_name == synthesize_more.name:
            student = run.tags.get("dagster/partition") or configured_student
        else:
            student = run.tags.get("gradus/student") or configured_student
        return dg.RunRequest(
            run_key=f"after-{run.run_id}",
            partition_key=student,
            tags={"gradus/after": run.run_id, "gradus/student": student},
        )

    return grade_new_problems
