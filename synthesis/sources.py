"""The problem pool: procedural families, reasoning-gym datasets and dataset imports named in the project config,
merged by id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from synthesis.families import FAMILIES
from synthesis.importers import import_dataset, mapping_for
from synthesis.problem import SourceResult
from synthesis.reasoning_gym_source import rg_problems


class ProceduralSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    family: str = Field(description="a registered family name, e.g. 'arithmetic'")
    levels: list[int] = Field(description="difficulty knob settings to generate")
    per_level: int = Field(ge=0, description="problems per knob setting")
    seed: int = 0


class ImportSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        description="a .jsonl/.json/.parquet/.csv file or a save_to_disk directory; relative to the config file"
    )
    preset: str | None = Field(None, description="a field-mapping preset: 'gsm8k', 'math' or 'math_solution'")
    source: str | None = Field(None, description="the source name written on each problem (default: preset)")
    limit: int | None = Field(None, ge=0, description="import at most this many problems")
    where: dict[str, Annotated[list[str | int | float | bool], Field(min_length=1)]] | None = Field(
        None,
        description="keep only rows whose column holds a listed value, e.g. {difficulty: [1, 2]} (skipped rows "
        "are not rejects and do not count toward limit)",
    )
    mapping: dict[str, str] | None = Field(
        None,
        description="overrides: question, answer (a column or a '{column} {column}' template), answer_rule, "
        "id_field, solution ('' switches an optional off), list_answer (only/first/join), answer_unit (strip/keep)",
    )


class ReasoningGymSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="a reasoning-gym dataset name, e.g. 'gcd'")
    size: int = Field(ge=1, description="problems to generate")
    seed: int = Field(
        0, description="hashed with the dataset name before reasoning-gym sees it, so nearby seeds never overlap"
    )
    level: int | None = Field(None, ge=0, description="the dataset's curriculum level, written as difficulty_knob")
    config: dict[str, Any] | None = Field(None, description="fields of the dataset's config class, e.g. max_value")


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    procedural: list[ProceduralSource] = Field(default_factory=list)
    imports: list[ImportSource] = Field(default_factory=list)
    reasoning_gym: list[ReasoningGymSource] = Field(default_factory=list)


def build_pool(config: SourcesConfig, base_dir: Path) -> tuple[SourceResult, int]:
    """All configured problems, de-duplicated by `problem_id` (first occurrence kept), plus the number merged."""
    gathered = SourceResult()
    for spec in config.procedural:
        family = FAMILIES.get(spec.family)()
        gathered.problems.extend(family.sample(spec.seed, spec.levels, spec.per_level))
    for spec in config.reasoning_gym:
        gathered.problems.extend(
            rg_problems(spec.name, size=spec.size, seed=spec.seed, config=spec.config, level=spec.level)
        )
    for spec in config.imports:
        path = Path(spec.path)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        source = spec.source or spec.preset or path.stem
        gathered.extend(
            import_dataset(
                path,
                source=source,
                mapping=mapping_for(spec.preset, spec.mapping),
                limit=spec.limit,
                where=spec.where,
            )
        )
    seen: set[str] = set()
    unique = SourceResult(rejects=gathered.rejects)
    for problem in gathered.problems:
        if problem.problem_id not in seen:
            seen.add(problem.problem_id)
            unique.problems.append(problem)
    return unique, len(gathered.problems) - len(unique.problems)
