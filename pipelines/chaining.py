"""Run-status sensors that chain jobs: new synthesized problems are graded as soon as they exist."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines.jobs import build_all, socratic, synthesize_more
from scoring.config import load_config


def build_chaining(config_path: Path) -> list[dg.SensorDefinition]:
    """A sensor that launches `build_all` for the student after `synthesize_more` or a Socratic round succeeds."""
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

    return [grade_new_problems]
