"""ScaleQuest (methods §8; Ding et al., arXiv 2410.18693): seed-free question sampling and its filter chain.

Skeleton: the config is fixed here so the project config can hold it; the method is built in this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScaleQuestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run ScaleQuest in the synthesis job")
    questions: int = Field(16, ge=1, le=1_000_000, description="questions to sample from the generator")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="question sampling temperature (paper: 1.0)")
    top_p: float = Field(0.99, gt=0.0, le=1.0, description="question sampling top-p (paper: 0.99)")
    max_question_tokens: int = Field(256, ge=16, description="question length cap in tokens")
    responses: int = Field(3, ge=1, le=16, description="solutions sampled per question for best-of-n (paper: 5)")
    response_temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_response_tokens: int = Field(384, ge=16)
    drop_easy_share: float = Field(
        0.5, ge=0.0, le=1.0, description="difficulty sampling: share of too-easy questions dropped (seeded)"
    )
    seed: int = 0
