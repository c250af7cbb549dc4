"""The skill vocabulary, the pure part of STAT's skills (methods §7, He et al., arXiv 2510.10023; §9 GLAN key
concepts, Li et al., arXiv 2402.13064): skills have a slug id (`linear_equations`), a name and a short definition.
Ids are derived from names by `slugify`, and two names that normalize to the same key (`dedup_key`: slug, simple
plurals folded) are one skill; the first source to name it wins, so ids stay stable as proposals come and go.
Users can supply or edit the vocabulary as YAML (`load_vocabulary_yaml`); procedural families and GLAN key
concepts contribute their skills without a model call (`family_skills`, `glan_concept_skills`). The teacher's
prompts and the parsers of its replies live in `synthesis/skills.py`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from engines.errors import ConfigError

MAX_ID_CHARS = 48
MAX_NAME_CHARS = 80
MAX_DEFINITION_CHARS = 300

_NON_SLUG = re.compile(r"[^a-z0-9]+")
_VOCAB_KEYS = {"id", "name", "definition"}

# Definitions of the skills procedural families tag their problems with (`Family.skills`). They are concrete about
# what a problem of the skill looks like, because that is what a small teacher model can match on.
KNOWN_SKILLS: dict[str, tuple[str, str]] = {
    "arithmetic": ("Arithmetic", "compute the value of an expression of whole numbers with +, -, *"),
    "order_of_operations": ("Order of operations", "evaluate * before + and -, and brackets first"),
    "linear_equations": ("Linear equations", "find unknowns like x, y, z from one or more linear equations"),
    "algebraic_manipulation": ("Algebraic manipulation", "move terms across an equation, eliminate unknowns"),
    "modular_arithmetic": ("Modular arithmetic", "remainders on division, powers modulo m"),
    "exponents": ("Exponents", "powers like 7^5 and their rules"),
    "combinatorics": ("Combinatorics", "count the ways to choose, order or arrange things"),
    "sequences": ("Sequences", "find the rule of a list of numbers and its next term"),
    "pattern_recognition": ("Pattern recognition", "spot the differences, ratios or recurrence behind numbers"),
    "fraction_arithmetic": ("Fraction arithmetic", "add, subtract, multiply or divide fractions, reduce the result"),
    "expression_search": ("Expression search", "combine given numbers with + - * / to reach a target number"),
    "logic": ("Logic", "deduce who tells the truth or lies from statements (knights and knaves)"),
    "case_analysis": ("Case analysis", "try each possible case and rule out the contradictory ones"),
    "word_problems": ("Word problems", "a short story about people, money or items that needs calculation steps"),
}


@dataclass(frozen=True, slots=True)
class Skill:
    """One vocabulary entry (a row of the `skills` table)."""

    skill_id: str
    name: str
    definition: str = ""
    source: str = "user"  # user | family | glan | teacher


def slugify(text: str) -> str:
    """A stable id for a skill name: NFKC, lower case, runs of anything but [a-z0-9] become one '_', at most
    48 characters (cut at a word boundary). "Linear Equations (2x2)" → "linear_equations_2x2"."""
    text = unicodedata.normalize("NFKC", text).lower().replace("&", " and ")
    slug = _NON_SLUG.sub("_", text).strip("_")
    if len(slug) > MAX_ID_CHARS:
        slug = slug[:MAX_ID_CHARS].rsplit("_", 1)[0] or slug[:MAX_ID_CHARS]
    return slug


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def dedup_key(text: str) -> str:
    """The key two names must share to be one skill: the slug with simple plurals folded ("Sequences" and
    "sequence" are one skill; "combinatorial" and "combinatorics" are not)."""
    return "_".join(_singular(word) for word in slugify(text).split("_") if word)


class Vocabulary:
    """An ordered, deduplicated set of skills; `resolve` maps a label the teacher wrote to a known id."""

    def __init__(self, skills: Iterable[Skill] = ()) -> None:
        self._skills: dict[str, Skill] = {}
        self._keys: dict[str, str] = {}  # dedup key of every id and name → id (merges plurals)
        self._slugs: dict[str, str] = {}  # slug of every id and name → id (what a label may be written as)
        for skill in skills:
            self.add(skill)

    def add(self, skill: Skill) -> str | None:
        """Add `skill` unless its id or name is already known; return the id it is known under (None when it
        has no usable id: an empty slug)."""
        skill_id = slugify(skill.skill_id or skill.name)
        if not skill_id:
            return None
        for key in (dedup_key(skill_id), dedup_key(skill.name)):
            if key in self._keys:
                return self._keys[key]
        stored = Skill(skill_id, skill.name.strip() or skill_id, skill.definition.strip(), skill.source)
        self._skills[skill_id] = stored
        for key in (dedup_key(skill_id), dedup_key(stored.name)):
            self._keys.setdefault(key, skill_id)
        for slug in (skill_id, slugify(stored.name)):
            self._slugs.setdefault(slug, skill_id)
        return skill_id

    def resolve(self, label: str) -> str | None:
        """The known id a label stands for: the id itself, or an id or name written with other case, spacing or
        punctuation ("Linear Equations", "linear-equations"); None for anything else — a hallucinated id, and
        also a near miss such as "sequence" for "sequences": constrained output means the listed ids only."""
        cleaned = label.strip().strip("`'\"").strip()
        if cleaned in self._skills:
            return cleaned
        return self._slugs.get(slugify(cleaned)) if cleaned else None

    def get(self, skill_id: str) -> Skill:
        return self._skills[skill_id]

    @property
    def ids(self) -> list[str]:
        return list(self._skills)

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._skills

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills.values())

    def __len__(self) -> int:
        return len(self._skills)


# -- known skills without a model call --------------------------------------------------------------------------


def family_skills(skill_ids: Iterable[str], family: str) -> list[Skill]:
    """The vocabulary entries of a procedural family's skill tags (definitions from `KNOWN_SKILLS`)."""
    out = []
    for skill_id in skill_ids:
        default = (skill_id.replace("_", " ").capitalize(), f"problems like those of the {family} family")
        name, definition = KNOWN_SKILLS.get(skill_id, default)
        out.append(Skill(skill_id, name, definition, "family"))
    return out


def _metadata(metadata: str | dict[str, object]) -> dict[str, object]:
    if isinstance(metadata, dict):
        return metadata
    try:
        value = json.loads(metadata or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def glan_concepts(metadata: str | dict[str, object]) -> list[str]:
    """A GLAN question's key concepts (`metadata["key_concepts"]`, a list of names); [] when there are none."""
    concepts = _metadata(metadata).get("key_concepts")
    if not isinstance(concepts, list):
        return []
    return [c.strip()[:MAX_NAME_CHARS] for c in concepts if isinstance(c, str) and slugify(c)][:16]


def glan_concept_skills(metadata: str | dict[str, object]) -> list[Skill]:
    """Vocabulary entries for a GLAN question's key concepts (source "glan")."""
    subject = _metadata(metadata).get("subject")
    where = f"key concept of the GLAN syllabus for {subject}" if isinstance(subject, str) else "GLAN key concept"
    return [Skill(slugify(c), c, where[:MAX_DEFINITION_CHARS], "glan") for c in glan_concepts(metadata)]


# -- user vocabulary (YAML) -------------------------------------------------------------------------------------


def load_vocabulary_yaml(path: str | Path) -> list[Skill]:
    """Skills from a YAML file of the form

        skills:
          - id: linear_equations            # optional; derived from the name
            name: Linear equations
            definition: find unknowns from linear equations

    Raises `ConfigError` naming the file and the bad key (missing name, unknown key, an id that is not a slug,
    two entries that normalize to the same skill)."""
    path = Path(path)
    where = f"skill vocabulary {str(path)!r}"
    if not path.is_file():
        raise ConfigError(f"{where} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or "skills" not in raw:
        raise ConfigError(f"{where}: expected a mapping with a 'skills' list at the top")
    extra = sorted(set(raw) - {"skills"})
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (allowed: 'skills')")
    entries = raw["skills"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: 'skills' must be a non-empty list, got {type(entries).__name__}")
    vocab = Vocabulary()
    skills = []
    for index, entry in enumerate(entries):
        key = f"skills[{index}]"
        skill = _vocabulary_entry(entry, f"{where}: {key}")
        merged = vocab.add(skill)
        if merged != skill.skill_id:
            raise ConfigError(f"{where}: {key} ({skill.skill_id!r}) duplicates the skill {merged!r} listed before it")
        skills.append(skill)
    return skills


def _vocabulary_entry(entry: object, where: str) -> Skill:
    """One `skills` entry of a vocabulary file as a Skill; `ConfigError` prefixed with `where` when it is invalid."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping with 'name' (got {entry!r})")
    unknown = sorted(set(entry) - _VOCAB_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: id, name, definition)")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name is missing or empty")
    definition = entry.get("definition") or ""
    if not isinstance(definition, str):
        raise ConfigError(f"{where}.definition must be text, got {definition!r}")
    skill_id = entry.get("id")
    if skill_id is None:
        skill_id = slugify(name)
    elif not isinstance(skill_id, str) or slugify(skill_id) != skill_id:
        raise ConfigError(
            f"{where}.id {skill_id!r} is not a skill id: use lower-case letters, digits and '_' "
            f"(e.g. {slugify(str(skill_id))!r})"
        )
    if not skill_id:
        raise ConfigError(f"{where}.name {name!r} has no letters or digits to make an id from")
    return Skill(skill_id, name.strip(), definition.strip()[:MAX_DEFINITION_CHARS], "user")


def dump_vocabulary_yaml(skills: Iterable[Skill]) -> str:
    """A vocabulary as the YAML `load_vocabulary_yaml` reads: export the `skills` table, edit it, and point
    `skills.vocabulary` at the file (ids are kept, so labels stay comparable)."""
    entries = [{"id": s.skill_id, "name": s.name, "definition": s.definition} for s in skills]
    return yaml.safe_dump({"skills": entries}, sort_keys=False, allow_unicode=True, width=120)
