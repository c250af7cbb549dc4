"""Scheduled re-grading: as the student improves, its data is regenerated on a cron.

`regrade_schedule` (cron from `regeneration.schedule`) re-grades the pool for the latest registered student
checkpoint (or the configured student when none is registered) and rebuilds its curriculum.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.partitions import STUDENTS
from engines.errors import ConfigError
from pipelines.jobs import regrade
from scoring.checkpoints import latest_student
from scoring.config import load_config, resolve_data_root


def build_schedules(config_path: Path) -> list[dg.ScheduleDefinition]:
    """The re-grading schedule of one project config (cron from `regeneration.schedule`)."""
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

    return [regrade_schedule]
