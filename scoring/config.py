"""The project config (`gradus.yaml`): data root, student, sources, rollouts, grading, dedup, decontamination,
curriculum, exports, regeneration, trainer, supervision, distributed (Ray rollouts, Dagster executor).

Unknown keys are rejected with the key named; every error names the file. `GRADUS_HOME` overrides `data_root`.
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.config import EngineConfig
from engines.errors import ConfigError
from scoring.checkpoints import RegenerationConfig
from scoring.curation.dedup import DedupConfig
from scoring.curation.pool import DecontaminationConfig
from scoring.curriculum.strategies import CurriculumConfig
from scoring.grading.policy import GradingConfig
from scoring.grading.ray_config import RayConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.grading.skills import SkillsConfig
from scoring.grading.verify_config import VerifyConfig
from scoring.storage import DataRoot, safe_name
from scoring.supervision.config import SupervisionConfig
from scoring.training.ablation import AblationConfig
from scoring.training.exports import ExportsConfig
from scoring.training.grpo import TrainerConfig

if TYPE_CHECKING:
    from scoring.grading.ray_rollouts import RayStudent
from synthesis.config import SynthesisConfig
from synthesis.sources import SourcesConfig

DEFAULT_DATA_ROOT = ".gradus"


class DistributedConfig(BaseModel):
    """How the work is spread: rollouts on this process or a Ray cluster; Dagster steps in one process or many."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rollouts: Literal["local", "ray"] = Field("local", description="local: this process | ray: Ray actors")
    ray: RayConfig = Field(default_factory=RayConfig)
    executor: Literal["in_process", "multiprocess"] = Field(
        "in_process", description="Dagster executor for launched runs: one process, or one process per step"
    )
    max_concurrent: int = Field(2, ge=1, description="multiprocess executor: steps running at once")


class StudentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field("qwen15-coder", description="a user-facing name for the student; used in paths")
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        try:
            return safe_name(value, "student id")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: str = DEFAULT_DATA_ROOT
    student: StudentConfig = Field(default_factory=StudentConfig)
    teacher: EngineConfig | None = Field(
        None, description="the engine that checks, labels and writes problems (default: the student's engine)"
    )
    generator: EngineConfig | None = Field(
        None, description="the engine that samples seed-free questions (ScaleQuest; default: the teacher's engine)"
    )
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    skills: SkillsConfig = Field(default_factory=SkillsConfig)
    rollouts: RolloutConfig = Field(default_factory=RolloutConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    exports: ExportsConfig = Field(default_factory=ExportsConfig)
    regeneration: RegenerationConfig = Field(default_factory=RegenerationConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    ablation: AblationConfig = Field(default_factory=AblationConfig, description="the curriculum ablation job")
    supervision: SupervisionConfig = Field(
        default_factory=SupervisionConfig, description="SFT traces and preference pairs (off by default)"
    )
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    base_dir: str = Field(".", description="set by the loader: the config file's directory")

    def ray_student(self) -> RayStudent:
        """The student as a Ray rollout job needs it (`scoring.grading.ray_rollouts.run_rollouts_on_ray`)."""
        from scoring.grading.ray_rollouts import RayStudent

        return RayStudent(self.student.id, self.student.engine, self.rollouts, self.verify, self.distributed.ray)


# The bad value is shown cut short: a YAML alias bomb (`a1: &a1 [*a0, *a0, …]` nine levels deep) is a few
# hundred bytes of text but 10^9 elements when printed in full.
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxtuple, _SHOW.maxset = 2, 4, 4, 4, 4
_SHOW.maxstring, _SHOW.maxother = 80, 80
_MAX_ERRORS = 10


def _format_validation(error: ValidationError) -> str:
    lines = []
    items = error.errors(include_url=False)
    if len(items) > _MAX_ERRORS:
        lines.append(f"{len(items)} errors (the first {_MAX_ERRORS} follow)")
        items = items[:_MAX_ERRORS]
    for item in items:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key {where!r}")
        else:
            lines.append(f"{where}: {item['msg']} (got {_SHOW.repr(item.get('input'))})")
    return "; ".join(lines)


def load_config(path: str | Path) -> ProjectConfig:
    """Parse and validate a `gradus.yaml`; raise `ConfigError` naming the file and the bad key or value."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(raw).__name__}")
    if "base_dir" in raw:
        raise ConfigError(f"config file {str(path)!r}: unknown key 'base_dir'")
    try:
        return ProjectConfig(**raw, base_dir=str(path.resolve().parent))
    except ValidationError as exc:
        raise ConfigError(f"config file {str(path)!r}: {_format_validation(exc)}") from None


def with_overrides(config: ProjectConfig, overrides: dict[str, Any], *, origin: str = "run config") -> ProjectConfig:
    """`config` with dotted-key overrides (`{"rollouts.k": 8}`) applied and the result validated again, so a bad
    value fails with the field's dotted name and its allowed range; `None` values are ignored (not overridden)."""
    data = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{origin}: unknown key {dotted!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{origin}: unknown key {dotted!r}")
        node[leaf] = value
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_format_validation(exc)}") from None


def resolve_data_root(config: ProjectConfig, override: str | None = None) -> DataRoot:
    """Data root: an explicit override, else `GRADUS_HOME`, else the config's (relative to the config file)."""
    chosen = override or os.environ.get("GRADUS_HOME")
    if chosen:
        return DataRoot(Path(chosen).expanduser())  # relative to the working directory, like any CLI path
    path = Path(config.data_root).expanduser()
    return DataRoot(path if path.is_absolute() else Path(config.base_dir) / path)
