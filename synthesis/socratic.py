"""Socratic-Zero (methods §10; Wang et al., arXiv 2509.24726): the teacher turns the student's failures into new
problems, kept when the student's pass rate on them lands near 0.5.

Skeleton: the config is fixed here so the project config can hold it; the method is built in this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SocraticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run Socratic-Zero rounds in the synthesis job")
    rounds: int = Field(2, ge=1, le=50, description="rounds (paper: 3; README: up to 5)")
    seeds: int = Field(100, ge=1, description="seed problems taken from the pool (paper: 100)")
    failures_per_round: int = Field(8, ge=1, description="failed attempts refined per round")
    k: int = Field(8, ge=1, le=64, description="student attempts per new problem (paper: 8)")
    keep: str = Field("gaussian", description="gaussian (utility exp(-(s-mu)^2/2sigma^2)) | band")
    mu: float = Field(0.5, ge=0.0, le=1.0)
    sigma: float = Field(0.2, gt=0.0)
    min_utility: float = Field(0.3, ge=0.0, le=1.0, description="gaussian: keep when utility ≥ this")
    band: tuple[float, float] = Field((0.1, 0.9), description="band: keep when lo < pass rate < hi")
    replay_share: float = Field(0.25, ge=0.0, le=1.0, description="share of earlier rounds' items replayed")
    seed: int = 0
