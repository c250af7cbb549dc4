"""How answers are checked: the `verify` section of `gradus.yaml`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VerifyConfig(BaseModel):
    """How answers are checked. `timeout_s` bounds one answer; `workers` processes share a batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(5.0, gt=0, description="time limit for checking one answer")
    workers: int = Field(2, ge=1, description="checker processes")
    chunk_size: int = Field(16, ge=1, description="answers sent to a worker at a time")
    use_family_scorer: bool = Field(True, description="let procedural families check their own problems")


DEFAULT_CONFIG = VerifyConfig()
