"""Settings for spreading the work (`distributed` in the project config): Ray rollouts and the Dagster executor.

Kept apart from `scoring.distributed` (the Ray code) so that the project config can hold them without importing
the code that runs them (which takes the project config).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RayConfig(BaseModel):
    """Where the Ray workers run and how the pool is split among them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(
        None, description="an existing cluster ('auto', 'ray://head:10001'); None starts a local Ray on this machine"
    )
    num_workers: int = Field(2, ge=1, description="actors, each holding one engine (one model replica)")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per actor (embedded: its llama.cpp threads)")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs reserved per actor (vllm backend)")
    batch_size: int = Field(8, ge=1, description="problems per batch handed to an actor")
    object_store_mb: int | None = Field(None, ge=80, description="local Ray only: object store size (default: Ray's)")


class DistributedConfig(BaseModel):
    """How the work is spread: rollouts on this process or a Ray cluster; Dagster steps in one process or many."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rollouts: Literal["local", "ray"] = Field("local", description="local: this process | ray: Ray actors")
    ray: RayConfig = Field(default_factory=RayConfig)
    executor: Literal["in_process", "multiprocess"] = Field(
        "in_process", description="Dagster executor for launched runs: one process, or one process per step"
    )
    max_concurrent: int = Field(2, ge=1, description="multiprocess executor: steps running at once")
