"""Resource instances built from `gradus.yaml`: the one place where config and environment meet Dagster."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from assets.resources import CatalogResource, DataRootResource, ProjectResource, StudentEngineResource
from scoring.config import load_config, resolve_data_root

CONFIG_ENV = "GRADUS_CONFIG"
API_KEY_ENV = "GRADUS_STUDENT_API_KEY"


def default_config_path() -> Path:
    """`GRADUS_CONFIG` if set, else `gradus.yaml` in the working directory."""
    return Path(os.environ.get(CONFIG_ENV, "gradus.yaml")).resolve()


def build_resources(config_path: str | Path, data_root: str | None = None) -> dict[str, dg.ConfigurableResource]:
    """The resources for every asset, with values from the config file (overridable in the launchpad)."""
    config = load_config(config_path)
    root = DataRootResource(path=str(resolve_data_root(config, data_root).path))
    engine = config.student.engine
    api_key = dg.EnvVar(API_KEY_ENV) if os.environ.get(API_KEY_ENV) else engine.api_key
    return {
        "project": ProjectResource(config_path=str(Path(config_path).resolve())),
        "data_root": root,
        "student": StudentEngineResource(
            student_id=config.student.id,
            backend=engine.backend,
            model=engine.model,
            model_revision=engine.model_revision,
            base_url=engine.base_url,
            api_key=api_key,
            n_ctx=engine.n_ctx,
            n_threads=engine.n_threads,
            max_concurrency=engine.max_concurrency,
            timeout_s=engine.timeout_s,
            max_retries=engine.max_retries,
        ),
        "catalog": CatalogResource(data_root=root),
    }
