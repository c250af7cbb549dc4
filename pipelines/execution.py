"""Running a project job the way `dagster dev` would: with the executor the config selects, on a persistent
instance, as a job its step processes can rebuild from (config path, job name, data root).

Apart from `pipelines.executors` because it needs the definitions, which need the executor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.definitions import build_definitions
from pipelines.resources import CONFIG_ENV
from scoring.config import load_config


def project_job(config_path: str, job_name: str, data_root: str | None) -> dg.JobDefinition:
    """The named job of the definitions for `config_path`: what each step process rebuilds the job from."""
    return build_definitions(config_path, data_root).resolve_job_def(job_name)


@contextmanager
def _config_env(config_path: Path) -> Iterator[None]:
    # Step processes import `pipelines.definitions`, whose module-level `defs` reads GRADUS_CONFIG: point it at
    # this run's config so it loads the same project.
    previous = os.environ.get(CONFIG_ENV)
    os.environ[CONFIG_ENV] = str(config_path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = previous


def execute_project_job(
    config_path: str | Path,
    job_name: str = "build_all",
    *,
    instance: dg.DagsterInstance,
    data_root: str | None = None,
    student_id: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
    raise_on_error: bool = False,
) -> dg.JobExecutionResult:
    """Run `job_name` for the student's partition with the executor the config selects, as `dagster dev` would.

    `instance` must be persistent (`dg.instance_for_test()`, or `DagsterInstance.get()` under DAGSTER_HOME):
    step processes of the multiprocess executor report to it."""
    from pipelines.materialize import add_student

    path = Path(config_path).resolve()
    partition = student_id or load_config(path).student.id
    add_student(instance, partition)
    job = dg.build_reconstructable_job(
        "pipelines.execution", "project_job", reconstructable_args=(str(path), job_name, data_root)
    )
    with _config_env(path):
        return dg.execute_job(
            job,
            instance=instance,
            run_config=dict(run_config or {}),
            tags={"dagster/partition": partition, **(tags or {})},
            asset_selection=asset_selection,
            raise_on_error=raise_on_error,
        )
