"""GLAN (methods §9; Li et al., arXiv 2402.13064): taxonomy → subjects → syllabus → homework questions.

Skeleton: the config is fixed here so the project config can hold it; the method is built in this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GlanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run GLAN in the synthesis job")
    taxonomy: str | None = Field(
        None, description="a YAML taxonomy file (fields → sub-fields → disciplines) used instead of asking the teacher"
    )
    disciplines: int = Field(2, ge=1, description="disciplines kept from the taxonomy")
    subjects_per_discipline: int = Field(2, ge=1)
    sessions_per_subject: int = Field(3, ge=1, le=30, description="class sessions per syllabus (paper: 10–30)")
    questions: int = Field(8, ge=1, description="homework questions to write")
    two_session_share: float = Field(0.5, ge=0.0, le=1.0, description="share of questions spanning two sessions")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="paper: T 1.0, top-p 0.95")
    answer_temperature: float = Field(0.7, ge=0.0, le=2.0, description="paper: answers at T 0.7")
    seed: int = 0
