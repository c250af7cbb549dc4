"""Running the curriculum ablation (issue 23) on a persistent Dagster instance: grade the pool, then materialize
each (arm, seed) partition of `ablation_run` that is not materialized yet, then `ablation_report`.

Partitions are run seed by seed (every arm at seed 0, then seed 1, …) so a comparison cut short is still balanced
across arms; a rerun skips what is done, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg

from assets.ablation import ablation_partition_key
from pipelines.definitions import build_definitions
from pipelines.execution import execute_project_job

GRADING_ASSETS = ("problems", "duplicates", "contamination", "rollouts", "difficulty")


def missing_runs(instance: dg.DagsterInstance, arms: Sequence[str], seeds: Sequence[int]) -> list[dg.MultiPartitionKey]:
    """The (arm, seed) partitions of `ablation_run` not materialized on `instance`, seed-major."""
    done = instance.get_materialized_partitions(dg.AssetKey("ablation_run"))
    keys = [ablation_partition_key(arm, seed) for seed in seeds for arm in arms]
    return [key for key in keys if str(key) not in done]


def run_ablation(
    config_path: str | Path,
    arms: Sequence[str],
    seeds: Sequence[int],
    *,
    instance: dg.DagsterInstance,
    log: Callable[[str], object] = print,
) -> list[dg.MultiPartitionKey]:
    """Grade the pool (cached assets), train every missing (arm, seed) run, aggregate; returns the runs trained."""
    started = time.perf_counter()
    execute_project_job(
        config_path,
        "build_all",
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in GRADING_ASSETS],
        raise_on_error=True,
    )
    log(f"pool graded ({time.perf_counter() - started:.0f} s)")
    defs = build_definitions(config_path)
    job = defs.resolve_job_def("curriculum_ablation")
    todo = missing_runs(instance, arms, seeds)
    log(f"{len(arms) * len(seeds) - len(todo)} run(s) done earlier, {len(todo)} to train")
    for key in todo:
        started = time.perf_counter()
        job.execute_in_process(partition_key=key, instance=instance)
        log(f"{key}: trained in {time.perf_counter() - started:.0f} s")
    defs.resolve_job_def("ablation_summary").execute_in_process(instance=instance)
    return todo
