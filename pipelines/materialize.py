"""Materialize the project's assets in-process for the configured student's partition (the CLI and tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from assets import ALL_ASSETS, ALL_CHECKS
from assets.partitions import STUDENTS
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
    selection = list(selection) if selection is not None else [*ALL_ASSETS, *ALL_CHECKS]
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
