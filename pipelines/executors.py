"""Which Dagster executor runs a job's steps, from the project config (`pipelines.execution` runs a job with it).

`distributed.executor: in_process` runs every step in the run's process (what `gradus run` does through
`dg.materialize`); `multiprocess` runs each step in its own process, `distributed.max_concurrent` at a time.
Assets share no in-memory state — each reads its inputs from the data root and writes its tables there — so
either executor gives the same outputs. A multiprocess run needs a persistent instance (not an ephemeral one)
and a job its step processes can rebuild: `pipelines.execution.execute_project_job` gives both to
`dg.execute_job`.
"""

from __future__ import annotations

import dagster as dg

from scoring.config import ProjectConfig

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
