"""The `synthesis` section of the project config: one block per LLM-driven method, plus the answer check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthesis.glan import GlanConfig
from synthesis.restructure import RestructureConfig
from synthesis.scalequest import ScaleQuestConfig
from synthesis.socratic import SocraticConfig


class AnswerCheckConfig(BaseModel):
    """A synthesized answer is accepted only when `min_votes` of `k` independent solutions, and a majority,
    reach it (STAT-Syn's 2-of-3 rule, methods §7)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(3, ge=1, le=16, description="independent solutions per synthesized problem")
    min_votes: int = Field(2, ge=1, le=16, description="solutions that must agree with the answer")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(384, ge=16)


class SynthesisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    answers: AnswerCheckConfig = Field(default_factory=AnswerCheckConfig)
    scalequest: ScaleQuestConfig = Field(default_factory=ScaleQuestConfig)
    glan: GlanConfig = Field(default_factory=GlanConfig)
    socratic: SocraticConfig = Field(default_factory=SocraticConfig)
    restructure: RestructureConfig = Field(default_factory=RestructureConfig)
