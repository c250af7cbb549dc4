"""Problem restructuring (methods §13: CLPO simplify/diversify, GHPO solution-prefix hints).

Skeleton: the config is fixed here so the project config can hold it; the method is built in this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RestructureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="restructure graded problems in the synthesis job")
    hard_below: float = Field(0.3, ge=0.0, le=1.0, description="CLPO: hard when pass rate ≤ this")
    medium_below: float = Field(0.7, ge=0.0, le=1.0, description="CLPO: medium when hard_below < pass rate ≤ this")
    simplify: bool = True
    hints: tuple[float, ...] = Field((0.25, 0.5, 0.75), description="GHPO solution-prefix shares for always-failed")
    diversify: bool = True
    max_problems: int = Field(8, ge=0, description="problems restructured per run")
    seed: int = 0
