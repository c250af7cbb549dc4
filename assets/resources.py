"""Dagster resources: the project config, the data root, the student engine and the DuckDB catalog.

They are declared here (assets depend on them) and instantiated from `gradus.yaml` in `pipelines/resources.py`,
so every knob shows in the Dagster UI's launchpad and can be overridden per run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from engines import Engine, EngineConfig
from engines.config import build_engine
from scoring.config import ProjectConfig, StudentConfig, load_config
from scoring.storage import DataRoot


class ProjectResource(dg.ConfigurableResource):
    """The project config file (`gradus.yaml`): sources, rollout settings, curriculum settings."""

    config_path: str = Field(description="path to gradus.yaml")

    def load(self) -> ProjectConfig:
        return load_config(self.config_path)


class DataRootResource(dg.ConfigurableResource):
    """The one directory every table, shard, cache entry and model file lives under."""

    path: str = Field(description="absolute path of the data root (GRADUS_HOME)")

    def root(self) -> DataRoot:
        return DataRoot(self.path)


class StudentEngineResource(dg.ConfigurableResource):
    """The student model: whose difficulty is graded. Backends: embedded (CPU default), openai, vllm."""

    student_id: str = Field(description="a user-facing name for the student, used in table partitions")
    backend: str = Field("embedded", description="embedded | openai | vllm")
    model: str = Field(description="embedded model name or .gguf path; served model name; vLLM model path")
    model_revision: str | None = Field(None, description="what changes when the model changes (openai/vllm)")
    base_url: str | None = Field(None, description="openai: server root, e.g. http://127.0.0.1:8000")
    api_key: str | None = Field(None, description="openai: bearer token; set it through an EnvVar")
    n_ctx: int = Field(2048, description="embedded: context window")
    n_threads: int | None = Field(None, description="embedded: CPU threads (default: all cores)")
    max_concurrency: int = Field(8, description="openai: requests in flight")
    timeout_s: float = Field(120.0, description="openai: per-request timeout (s)")
    max_retries: int = Field(4, description="openai: attempts per request")

    def student_config(self) -> StudentConfig:
        fields = self.model_dump(exclude={"student_id"})
        return StudentConfig(id=self.student_id, engine=EngineConfig(**fields))

    @contextmanager
    def open(self, root: DataRoot) -> Iterator[Engine]:
        engine = build_engine(self.student_config().engine, root.models_dir, root.cache_path)
        try:
            yield engine
        finally:
            engine.close()


class CatalogResource(dg.ConfigurableResource):
    """The DuckDB catalog (`catalog.duckdb` under the data root): one view per table."""

    data_root: DataRootResource

    def refresh(self) -> list[str]:
        return self.data_root.root().refresh_catalog()

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.data_root.root().catalog_path), read_only=True)
        try:
            yield con
        finally:
            con.close()


def effective_config(project: ProjectResource, student: StudentEngineResource) -> ProjectConfig:
    """The project config with the student taken from the (possibly overridden) engine resource."""
    return project.load().model_copy(update={"student": student.student_config()})
