"""Materialize the project's assets in-process for the configured student's partition (the CLI and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from assets import ALL_CHECKS, MAIN_ASSETS
from assets.partitions import STUDENTS
from assets.synthesis import SOCRATIC_ROUNDS, socratic_problems
from pipelines.resources import build_resources
from scoring.config import load_config


def add_student(instance: dg.DagsterInstance, student_id: str) -> None:
    """Make `student_id` a partition of the student-partitioned assets (idempotent)."""
    if not instance.has_dynamic_partition(STUDENTS.name, student_id):
        instance.add_dynamic_partitions(STUDENTS.name, [student_id])


def materialize_project(
    config_path: str | Path,
    *,
    selection: Sequence[Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    data_root: str | None = None,
    student_id: str | None = None,
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    """`dg.materialize` of `selection` (default: every asset and check) with the project's resources, for the
    partition of `student_id` (default: the configured student), which is added to the instance first."""
    instance = instance or dg.DagsterInstance.ephemeral()
    selection = list(selection) if selection is not None else [*MAIN_ASSETS, *ALL_CHECKS]
    partitioned = any(getattr(item, "partitions_def", None) is not None for item in selection)
    partition = None
    if partitioned:
        partition = student_id or load_config(config_path).student.id
        add_student(instance, partition)
    return dg.materialize(
        selection,
        resources=build_resources(config_path, data_root),
        instance=instance,
        partition_key=partition,
        **kwargs,
    )


def materialize_socratic_round(
    config_path: str | Path,
    round_no: int,
    *,
    instance: dg.DagsterInstance | None = None,
    data_root: str | None = None,
    **kwargs: Any,
) -> dg.ExecuteInProcessResult:
    """One Socratic-Zero round as its partition of `socratic_problems` (the partition is added first)."""
    instance = instance or dg.DagsterInstance.ephemeral()
    key = str(round_no)
    if not instance.has_dynamic_partition(SOCRATIC_ROUNDS.name, key):
        instance.add_dynamic_partitions(SOCRATIC_ROUNDS.name, [key])
    return dg.materialize(
        [socratic_problems],
        resources=build_resources(config_path, data_root),
        instance=instance,
        partition_key=key,
        **kwargs,
    )
