"""Where Ray rollout actors run and how the pool is split among them (`distributed.ray` in the project config).

Kept apart from `scoring.grading.ray_rollouts` (the Ray code) so that the project config can hold it without
importing the code that runs it."""

from __future__ import annotations

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
