"""Per-run knobs shown in the launchpad (`dg.Config`): each asset's run config overrides `gradus.yaml` for that
run only. Values are validated against the project config's own bounds, so an error names the dotted field
(`rollouts.k`) and the allowed range."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from engines.errors import ConfigError
from scoring.config import ProjectConfig, with_overrides


class ProblemsRun(dg.Config):
    """Generate fewer or more procedural problems, or only some families, for this run."""

    families: list[str] | None = Field(None, description="keep only these procedural families (default: all)")
    per_level: int | None = Field(None, description="problems per level for every procedural family (>= 0)")

    def apply(self, config: ProjectConfig) -> ProjectConfig:
        procedural = config.sources.procedural
        if self.families is not None:
            configured = sorted({spec.family for spec in procedural})
            unknown = sorted(set(self.families) - set(configured))
            if unknown:
                raise ConfigError(f"run config: families {unknown} are not configured; configured: {configured}")
            procedural = [spec for spec in procedural if spec.family in self.families]
        specs = [
            spec.model_dump() | ({"per_level": self.per_level} if self.per_level is not None else {})
            for spec in procedural
        ]
        return with_overrides(config, {"sources.procedural": specs})


class RolloutsRun(dg.Config):
    """Rollouts per problem for this run. (Temperature, max_tokens and the prompt define the sampling config the
    curriculum reads, so they stay in gradus.yaml.)"""

    k: int | None = Field(None, description="rollouts per problem (1–1024)")

    def apply(self, config: ProjectConfig) -> ProjectConfig:
        return with_overrides(config, {"rollouts.k": self.k})


class DifficultyRun(dg.Config):
    """Difficulty bands on the pass rate for this run."""

    too_hard: float | None = Field(None, description="pass rate at or below which a problem is too hard (0–1)")
    too_easy: float | None = Field(None, description="pass rate at or above which a problem is too easy (0–1)")

    def apply(self, config: ProjectConfig) -> ProjectConfig:
        return with_overrides(
            config, {"grading.bands.too_hard": self.too_hard, "grading.bands.too_easy": self.too_easy}
        )


class CurriculumRun(dg.Config):
    """Shard size for this run (the strategy is set in gradus.yaml: the checks read the shards it names)."""

    shard_size: int | None = Field(None, description="problems per shard (>= 1)")

    def apply(self, config: ProjectConfig) -> ProjectConfig:
        return with_overrides(config, {"curriculum.shard_size": self.shard_size})
