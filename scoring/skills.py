"""Skills (methods §7, STAT; He et al., arXiv 2510.10023): a vocabulary, per-problem labels, a missing-skill
profile from failures, and the weights (STAT-Sel) and new problems (STAT-Syn) it steers.

Skeleton: the config is fixed here so the project config can hold it; the method is built in this module.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SkillsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="label skills and build the student's skill profile")
    vocabulary: str | None = Field(None, description="a YAML skill vocabulary file (ids, names, definitions)")
    propose_from: int = Field(24, ge=0, description="problems shown to the teacher to propose a vocabulary")
    max_skills: int = Field(24, ge=1, description="vocabulary size cap")
    labels_per_problem: tuple[int, int] = Field((1, 5), description="min and max skill ids per problem")
    failures_attributed: int = Field(32, ge=0, description="failed rollouts the teacher attributes per run")
    max_share: float = Field(0.5, gt=0.0, le=1.0, description="asset check: warn when one skill exceeds this share")
    syn_per_skill: int = Field(2, ge=0, description="STAT-Syn: new problems per missing skill (paper: 2)")
    seed: int = 0
