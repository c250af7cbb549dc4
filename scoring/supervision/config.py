"""The `supervision` section of `gradus.yaml`: which engine roles write traces, how they are sampled and checked,
which policies select them, the preference pairs, and the export formats. Off by default."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoring.supervision.exports import FORMATS, SupervisionFormat
from scoring.supervision.judge import TEACHER_JUDGE, StepJudgeConfig
from scoring.supervision.pairs import PairsConfig
from scoring.supervision.policies import SelectionConfig
from scoring.supervision.steps import STEP_CHECKERS
from scoring.supervision.traces import TraceSampling

TraceRole = Literal["teacher", "generator", "student"]


class SupervisionConfig(BaseModel):
    """SFT traces and preference pairs chosen by difficulty (methods §14)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run the supervision stage (it calls the trace roles' engines)")
    roles: tuple[TraceRole, ...] = Field(
        ("teacher",),
        min_length=1,
        description="engine roles that write traces; roles served by one engine config are sampled once",
    )
    max_problems: int | None = Field(
        None, ge=1, description="trace at most this many graded problems, hardest for the student first"
    )
    step_checker: str = Field(
        "arith_steps",
        description=f"a registered step checker (`STEP_CHECKERS`), or `{TEACHER_JUDGE}`: the teacher judges steps",
    )
    step_judge: StepJudgeConfig = Field(default_factory=StepJudgeConfig, description=f"used by `{TEACHER_JUDGE}`")
    traces: TraceSampling = Field(default_factory=TraceSampling)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    formats: tuple[SupervisionFormat, ...] = Field(FORMATS, min_length=1, description="export formats")

    @field_validator("step_checker")
    @classmethod
    def _known_checker(cls, value: str) -> str:
        return value if value == TEACHER_JUDGE else STEP_CHECKERS.check(value)

    @field_validator("roles")
    @classmethod
    def _distinct_roles(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(roles)) != len(roles):
            raise ValueError(f"roles are listed twice: {roles}")
        return roles

    @model_validator(mode="after")
    def _enough_samples_to_agree(self) -> SupervisionConfig:
        samples = self.traces.samples * len(self.roles)
        if "weak_to_strong" in self.selection.policies and samples < self.selection.min_agree:
            raise ValueError(
                f"weak_to_strong needs at least selection.min_agree = {self.selection.min_agree} traces per problem, "
                f"but traces.samples x roles = {samples}: raise traces.samples or drop the policy"
            )
        return self
