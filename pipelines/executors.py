"""Which Dagster executor runs a job's steps, from the project config, and running a job with it.

`distributed.executor: in_process` runs every step in the run's process (what `gradus run` does through
`dg.materialize`); `multiprocess` runs each step in its own process, `distributed.max_concurrent` at a time.
Assets share no in-memory state — each reads its inputs from the data root and writes its tables there — so
either executor gives the same outputs. A multiprocess run needs a persistent instance (not an ephemeral one)
and a job its step processes can rebuild: `execute_project_job` gives both to `dg.execute_job`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines.resources import CONFIG_ENV
from scoring.config import ProjectConfig, load_config

PRELOAD = ("dagster", "assets")  # imported once by the forkserver; no import-time side effects


def executor_for(config: ProjectConfig) -> dg.ExecutorDefinition:
    """The executor `distributed.executor` names (multiprocess limited to `distributed.max_concurrent` steps)."""
    if config.distributed.executor == "multiprocess":
        # Steps fork from a server that has imported Dagster and the assets once: spawning a fresh interpreter
        # per step costs ~6 CPU-seconds of imports, more than most steps' own work.
        start = {"forkserver": {"preload_modules": list(PRELOAD)}}
        return dg.multiprocess_executor.configured(
            {"max_concurrent": config.distributed.max_concurrent, "start_method": start}, name="multiprocess"
        )
    return dg.in_process_executor


def project_job(config_path: str, job_name: str, data_root: str | None) -> dg.JobDefinition:
    """The named job of the definitions for `config_path`: what each step process rebuilds the job from."""
    from pipelines.definitions import build_definitions

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
        "pipelines.executors", "project_job", reconstructable_args=(str(path), job_name, data_root)
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
