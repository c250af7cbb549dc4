"""Dagster Definitions for Gradus: `dagster dev` and `dagster definitions validate` load `defs` from here."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets import ALL_ASSETS, ALL_CHECKS
from pipelines.executors import executor_for
from pipelines.jobs import JOBS
from pipelines.resources import build_resources, default_config_path
from pipelines.schedules import build_schedules
from pipelines.sensors import build_sensors
from scoring.config import load_config


def build_definitions(config_path: str | Path | None = None, data_root: str | None = None) -> dg.Definitions:
    """Definitions for one project config (default: `GRADUS_CONFIG` or ./gradus.yaml); jobs run on the executor
    its `distributed.executor` names (`pipelines/executors.py`)."""
    path = Path(config_path) if config_path is not None else default_config_path()
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=JOBS,
        schedules=build_schedules(path),
        sensors=build_sensors(path),
        resources=build_resources(path, data_root),
        executor=executor_for(load_config(path)),
    )


defs = build_definitions()
