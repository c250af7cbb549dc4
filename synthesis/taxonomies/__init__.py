"""GLAN taxonomies (methods §9, §2.1 of Li et al., arXiv 2402.13064): fields → sub-fields → disciplines, as YAML.

The paper builds its taxonomy by prompting GPT-4 and having people vote nodes in or out; here a person writes
(or edits) the file, and `synthesis.glan.taxonomy: teacher` asks the teacher instead. `math_reasoning.yaml` is
the default. Format (unknown keys are errors, so a typo never silently drops a subtree):

    name: my_taxonomy          # optional
    description: ...           # optional
    fields:
      - name: Mathematics
        sub_fields:
          - name: Algebra
            disciplines: [Elementary algebra, Linear algebra]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.errors import ConfigError

TAXONOMY_DIR = Path(__file__).resolve().parent
DEFAULT_TAXONOMY = "math_reasoning"


def _clean_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be empty")
    return value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str

    @field_validator("name")
    @classmethod
    def _clean(cls, value: str) -> str:
        return _clean_name(value)


class _SubFieldNode(_Node):
    disciplines: list[str] = Field(min_length=1)

    @field_validator("disciplines")
    @classmethod
    def _clean_all(cls, value: list[str]) -> list[str]:
        return [_clean_name(v) for v in value]


class _FieldNode(_Node):
    sub_fields: list[_SubFieldNode] = Field(min_length=1)


class _TaxonomyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    fields: list[_FieldNode] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Discipline:
    field: str
    sub_field: str
    discipline: str


def shipped_taxonomies() -> list[str]:
    return sorted(p.stem for p in TAXONOMY_DIR.glob("*.yaml"))


def taxonomy_path(taxonomy: str | None, base_dir: Path) -> Path:
    """The YAML file `taxonomy` names: None → the shipped default; a bare name of a shipped taxonomy → its file
    here; anything else a path (a relative one from `base_dir`, the project config's directory)."""
    name = taxonomy or DEFAULT_TAXONOMY
    if name in shipped_taxonomies():
        return TAXONOMY_DIR / f"{name}.yaml"
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def load_taxonomy(path: Path) -> list[Discipline]:
    """Disciplines of a taxonomy file, in file order; `ConfigError` naming the file and the bad key or value.

    Format: `fields: [{name, sub_fields: [{name, disciplines: [str, ...]}]}]` (optional top-level `name`,
    `description`); unknown keys and repeated disciplines are errors (the discipline is the join key)."""
    if not path.is_file():
        shipped = ", ".join(shipped_taxonomies())
        raise ConfigError(f"taxonomy file {str(path)!r} does not exist (shipped taxonomies: {shipped})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"taxonomy file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"taxonomy file {str(path)!r} must hold a mapping with 'fields', got {type(raw).__name__}")
    try:
        parsed = _TaxonomyFile(**raw)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item["loc"]) or "(top level)"
            if item["type"] == "extra_forbidden":
                problems.append(f"unknown key {where!r}")
            else:
                problems.append(f"{where}: {item['msg']} (got {item.get('input')!r})")
        raise ConfigError(f"taxonomy file {str(path)!r}: " + "; ".join(problems)) from None
    rows, seen = [], set()
    for f in parsed.fields:
        for sub in f.sub_fields:
            for name in sub.disciplines:
                if name.casefold() in seen:
                    raise ConfigError(f"taxonomy file {str(path)!r}: discipline {name!r} is listed twice")
                seen.add(name.casefold())
                rows.append(Discipline(f.name, sub.name, name))
    return rows
