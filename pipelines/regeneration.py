"""Scheduled re-grading and the checkpoint sensor: as the student improves, its data is regenerated.

- `regrade_schedule` (cron from `regeneration.schedule`): re-grades the pool for the latest registered student
  checkpoint (or the configured student when none is registered) and rebuilds its curriculum.
- `checkpoint_sensor` (when `regeneration.checkpoints` is set): each tick, finds new checkpoints in the watched
  directory, registers each as a student (`students.json` under the data root), adds it as a partition of the
  student-partitioned assets and launches a re-grade of that partition; the cursor remembers what was seen, so a
  checkpoint is launched once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg

from assets.partitions import STUDENTS
from engines.errors import ConfigError
from pipelines.jobs import regrade
from scoring.checkpoints import latest_student, new_checkpoints, register
from scoring.config import load_config, resolve_data_root


def build_regeneration(config_path: Path) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """The schedule and (when configured) the sensor for one project config."""
    config = load_config(config_path)
    settings = config.regeneration

    try:
        dg.ScheduleDefinition(name="cron_probe", cron_schedule=settings.schedule.cron, job_name="probe")
    except dg.DagsterInvalidDefinitionError:
        raise ConfigError(
            f"regeneration.schedule.cron {settings.schedule.cron!r} in {config_path} is not a valid cron string"
        ) from None

    @dg.schedule(
        job=regrade,
        cron_schedule=settings.schedule.cron,
        execution_timezone=settings.schedule.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if settings.schedule.enabled
        else dg.DefaultScheduleStatus.STOPPED,
        description="Re-grade the pool for the latest student checkpoint and rebuild its curriculum.",
    )
    def regrade_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        latest = latest_student(resolve_data_root(load_config(config_path)))
        student = latest["student_id"] if latest else config.student.id
        if not context.instance.has_dynamic_partition(STUDENTS.name, student):
            return dg.SkipReason(f"student {student!r} is not a partition yet: run `gradus run` or add a checkpoint")
        return dg.RunRequest(partition_key=student, tags={"gradus/student": student})

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
    return [regrade_schedule], sensors
