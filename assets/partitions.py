"""Students as Dagster partitions: every grading and curriculum asset is materialized per student.

A partition key is a student id: the configured student (added by `gradus run`), or a checkpoint the sensor
registered (`students.json`). Adding a checkpoint adds a partition; materializing it reuses the unpartitioned
pool (problems, duplicates, contamination) and writes only that student's tables.
"""

import dagster as dg

STUDENTS = dg.DynamicPartitionsDefinition(name="students")


def partition_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str | None:
    """The run's student partition (assets and asset checks alike), or None for an unpartitioned run."""
    return context.run.tags.get("dagster/partition")
