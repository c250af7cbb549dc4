"""Skills, the pure part (methods §7 STAT, He et al., arXiv 2510.10023; §9 GLAN key concepts, Li et al., arXiv
2402.13064): a stable skill vocabulary, the prompts the teacher gets, and parsers for what it writes back.

- Vocabulary: skills have a slug id (`linear_equations`), a name and a short definition. Ids are derived from names
  by `slugify`, and two names that normalize to the same key (`dedup_key`: slug, simple plurals folded) are one
  skill; the first source to name it wins, so ids stay stable as proposals come and go. Users can supply or edit
  the vocabulary as YAML (`load_vocabulary_yaml`); procedural families and GLAN key concepts contribute their
  skills without a model call (`family_skills`, `glan_concept_skills`).
- Constrained labels: the teacher may only answer with ids from the vocabulary. `parse_skill_ids` resolves each
  label (an id, or the id/name written with other case, spacing or a plural), and every label it cannot accept
  becomes a rejected label with a reason — unknown ids ("unknown skill id 'x'"), duplicates, labels over the
  limit (truncated) — and a completion with no acceptable id is rejected whole.
- Parsers never `eval`; they use `synthesis.structured` and turn every malformed completion into a reason.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from engines.errors import ConfigError
from synthesis.prompting import prompt_version, render
from synthesis.structured import MAX_TEXT_CHARS, ParseError, extract_json, field_text, heading_section

LABEL_VERSION = "skills_teacher_v1"  # teacher labels and failure attributions; labeler = the teacher's model id
FAMILY_LABEL_VERSION = "family_v1"  # a procedural family's own skill tags (labeler "family")
GLAN_LABEL_VERSION = "glan_v1"  # a GLAN question's key concepts (labeler "glan")
STAT_SYN_LABEL_VERSION = "stat_syn_v1"  # a STAT-Syn problem's target skill (labeler "stat_syn")
KNOWN_LABELERS = ("family", "glan", "stat_syn")  # labels that need no model call, preferred over the teacher's

MAX_ID_CHARS = 48
MAX_NAME_CHARS = 80
MAX_DEFINITION_CHARS = 300
MAX_QUESTION_CHARS = 2_000
MIN_QUESTION_CHARS = 10  # "12^3 mod 5" is a question; "x = 3" is not

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
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {key} must be a mapping with 'name' (got {entry!r})")
        unknown = sorted(set(entry) - _VOCAB_KEYS)
        if unknown:
            raise ConfigError(f"{where}: {key}: unknown key {unknown[0]!r} (allowed: id, name, definition)")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: {key}.name is missing or empty")
        definition = entry.get("definition") or ""
        if not isinstance(definition, str):
            raise ConfigError(f"{where}: {key}.definition must be text, got {definition!r}")
        skill_id = entry.get("id")
        if skill_id is None:
            skill_id = slugify(name)
        elif not isinstance(skill_id, str) or slugify(skill_id) != skill_id:
            raise ConfigError(
                f"{where}: {key}.id {skill_id!r} is not a skill id: use lower-case letters, digits and '_' "
                f"(e.g. {slugify(str(skill_id))!r})"
            )
        if not skill_id:
            raise ConfigError(f"{where}: {key}.name {name!r} has no letters or digits to make an id from")
        skill = Skill(skill_id, name.strip(), definition.strip()[:MAX_DEFINITION_CHARS], "user")
        merged = vocab.add(skill)
        if merged != skill_id:
            raise ConfigError(f"{where}: {key} ({skill_id!r}) duplicates the skill {merged!r} listed before it")
        skills.append(skill)
    return skills


def dump_vocabulary_yaml(skills: Iterable[Skill]) -> str:
    """A vocabulary as the YAML `load_vocabulary_yaml` reads: export the `skills` table, edit it, and point
    `skills.vocabulary` at the file (ids are kept, so labels stay comparable)."""
    entries = [{"id": s.skill_id, "name": s.name, "definition": s.definition} for s in skills]
    return yaml.safe_dump({"skills": entries}, sort_keys=False, allow_unicode=True, width=120)


# -- prompts ----------------------------------------------------------------------------------------------------


def shuffled(skills: Sequence[Skill], seed: str) -> list[Skill]:
    """The vocabulary in a seeded order per prompt: small teachers favour the first-listed id (the 0.5B model
    answered with the first id on most problems), so a fixed order would pile that bias onto one skill."""
    order = list(skills)
    random.Random(seed).shuffle(order)
    return order


def _chat(template: str, **variables: object) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": render("skills_system")},
        {"role": "user", "content": render(template, **variables)},
    ]


def prompt_versions(template: str) -> str:
    """The version recorded on rows a prompt produced: its template's and the shared system prompt's."""
    return f"{prompt_version(template)}+{prompt_version('skills_system')}"


def proposal_messages(questions: Sequence[str], max_skills: int) -> list[dict[str, str]]:
    """STAT step 1: the teacher lists the skills a sample of a dataset's problems needs (`skills_propose`)."""
    return _chat("skills_propose", questions=[q[:600] for q in questions], max_skills=max_skills)


def label_messages(question: str, skills: Sequence[Skill], max_labels: int) -> list[dict[str, str]]:
    """Constrained labeling: which of the listed skill ids a problem needs (`skills_label`)."""
    return _chat("skills_label", question=question[:MAX_QUESTION_CHARS], skills=skills, max_labels=max_labels)


def clip_attempt(text: str, max_chars: int) -> str:
    """A student's attempt shortened in the middle: the start shows the approach, the end the answer."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 3
    return text[:head] + "\n[...]\n" + text[-(max_chars - head) :]


def attribution_messages(
    question: str, gold: str, attempt: str, skills: Sequence[Skill], max_labels: int, *, attempt_chars: int = 1_200
) -> list[dict[str, str]]:
    """STAT stage 2: the skills a failed attempt shows missing (`skills_attribute_failure`)."""
    return _chat(
        "skills_attribute_failure",
        question=question[:MAX_QUESTION_CHARS],
        gold=gold[:300],
        attempt=clip_attempt(attempt, attempt_chars),
        skills=skills,
        max_labels=max_labels,
    )


def stat_syn_messages(skill: Skill, references: Sequence[str], count: int) -> list[dict[str, str]]:
    """STAT-Syn: `count` new problems that exercise `skill`, written from reference problems (`skills_stat_syn`)."""
    return _chat("skills_stat_syn", skill=skill, references=[r[:800] for r in references], count=count)


# -- parsers ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelParse:
    """The outcome of parsing one labeling (or attribution) completion."""

    accepted: tuple[str, ...]  # known ids, in the order the teacher gave them
    rejected: tuple[tuple[str, str], ...] = ()  # (label as written, reason) for every label not accepted
    error: str | None = None  # why the completion as a whole was rejected; None when accepted

    @property
    def ok(self) -> bool:
        return self.error is None


def _label_list(text: str, key: str, heading: str | None = "SKILLS") -> list[object]:
    """The list a completion gives: `{"<key>": [...]}` (or the object's only list), a bare JSON list, or (labels
    only) a `SKILLS:` heading with comma-separated ids. Raises `ParseError`."""
    try:
        obj = extract_json(text, expect=dict)
    except ParseError as not_dict:
        try:
            return list(extract_json(text, expect=list))  # type: ignore[arg-type]
        except ParseError:
            section = heading_section(text, heading) if heading and len(text) <= MAX_TEXT_CHARS else None
            if section:
                return [part for part in re.split(r"[,\n]", section) if part.strip()]
            raise not_dict from None
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ParseError(f"JSON object has no {key!r} list")
        value = lists[0]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ParseError(f"field {key!r} is {type(value).__name__}, not a list")
    return value


def parse_skill_ids(
    text: str, vocab: Vocabulary, *, key: str = "skills", min_labels: int = 1, max_labels: int = 5
) -> LabelParse:
    """Constrained labels: only ids in `vocab` are accepted. Unknown ids → rejected with "unknown skill id 'x'";
    repeats → "duplicate skill id"; labels past `max_labels` → rejected as truncated; fewer than `min_labels`
    known ids → the whole completion is rejected (its unknown labels stay listed)."""
    try:
        labels = _label_list(text, key)
    except ParseError as exc:
        return LabelParse((), (), exc.reason)
    accepted: list[str] = []
    rejected: list[tuple[str, str]] = []
    for label in labels[:64]:
        if isinstance(label, dict):  # {"id": "x", ...} instead of "x"
            label = label.get("id") or label.get("skill_id") or label.get("name")
        if not isinstance(label, str):
            rejected.append((json.dumps(label)[:80], f"label is {type(label).__name__}, not a skill id"))
            continue
        label = label.strip()[:MAX_NAME_CHARS]
        skill_id = vocab.resolve(label)
        if skill_id is None:
            rejected.append((label, f"unknown skill id {label!r}"))
        elif skill_id in accepted:
            rejected.append((label, f"duplicate skill id {skill_id!r}"))
        elif len(accepted) >= max_labels:
            rejected.append((label, f"over the limit of {max_labels} labels per problem (truncated)"))
        else:
            accepted.append(skill_id)
    if len(labels) > 64:
        rejected.append((f"{len(labels) - 64} more", "over 64 labels: the rest was not read"))
    if len(accepted) < min_labels:
        why = "no known skill id" if not accepted else f"only {len(accepted)} known skill ids (need {min_labels})"
        return LabelParse((), tuple(rejected), f"{why} among {len(labels)} labels")
    return LabelParse(tuple(accepted), tuple(rejected))


def parse_missing_skills(text: str, offered: Vocabulary, vocab: Vocabulary, *, max_labels: int) -> LabelParse:
    """A failure attribution constrained to the skills `offered` to the teacher (the failed problem's own skills,
    or all of `vocab`): a known skill that was not offered is rejected as "not one of the problem's skills"."""
    parsed = parse_skill_ids(text, offered, key="missing_skills", max_labels=max_labels)
    rejected = []
    for raw, why in parsed.rejected:
        known = vocab.resolve(raw) if offered is not vocab else None
        if known is not None and known not in offered:
            why = f"skill {known!r} is not one of the problem's skills {offered.ids}"
        rejected.append((raw, why))
    return LabelParse(parsed.accepted, tuple(rejected), parsed.error)


def offered_skills(own: Iterable[str], vocab: Vocabulary) -> Vocabulary:
    """The skills a failure attribution may name: the problem's own labels that are in `vocab`, in label order;
    all of `vocab` when it has none."""
    mine = [vocab.get(s) for s in dict.fromkeys(own) if s in vocab]
    return Vocabulary(mine) if mine else vocab


def _complete_objects(text: str) -> list[object]:
    """The complete JSON objects inside the first list of a truncated completion (`{"skills": [{..}, {..}, {..`)."""
    if len(text) > MAX_TEXT_CHARS or "[" not in text:
        return []
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    found: list[object] = []
    while (start := text.find("{", pos)) >= 0 and len(found) < 64:
        try:
            value, pos = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            break  # the entry the cut went through
        found.append(value)
    return found


def parse_proposal(text: str, max_skills: int) -> tuple[list[Skill], list[tuple[str, str]]]:
    """The teacher's proposed skills: `{"skills": [{"name", "definition"}, ...]}` (or a list of such objects or
    of names). A completion cut off mid-list keeps its complete entries (the cut one is a rejected entry).
    Returns (skills, rejected entries with reasons); raises `ParseError` when nothing is usable."""
    rejected: list[tuple[str, str]] = []
    try:
        entries = _label_list(text, "skills")
    except ParseError as exc:
        entries = _complete_objects(text)
        if not entries:
            raise
        rejected.append((text[-120:], f"{exc.reason}: kept the {len(entries)} complete entries before the cut"))
    skills: list[Skill] = []
    seen = Vocabulary()
    for entry in entries[:64]:
        try:
            if isinstance(entry, str):
                name, definition = entry.strip(), ""
            elif isinstance(entry, dict):
                name = field_text(entry, "name", max_chars=MAX_NAME_CHARS) or ""
                definition = field_text(entry, "definition", max_chars=MAX_DEFINITION_CHARS, required=False) or ""
            else:
                raise ParseError(f"entry is {type(entry).__name__}, not a skill")
            if not name or len(name) > MAX_NAME_CHARS:
                raise ParseError("empty or over-long skill name")
            skill_id = slugify(name)
            if not skill_id:
                raise ParseError("skill name has no letters or digits")
        except ParseError as exc:
            rejected.append((json.dumps(entry)[:120], exc.reason))
            continue
        if seen.add(Skill(skill_id, name, definition, "teacher")) != skill_id:
            rejected.append((name, "duplicate of a skill proposed before it"))
        elif len(skills) >= max_skills:
            rejected.append((name, f"over the limit of {max_skills} proposed skills (truncated)"))
        else:
            skills.append(seen.get(skill_id))
    if not skills:
        raise ParseError("no usable skill in the proposal")
    return skills, rejected


def parse_questions(text: str, count: int) -> tuple[list[str], list[tuple[str, str]]]:
    """STAT-Syn's new problems: `{"questions": ["...", ...]}` (or a list of strings / of {"question"} objects),
    else a `QUESTION:` heading. Returns (questions, rejected entries with reasons); raises `ParseError`."""
    try:
        entries = _label_list(text, "questions", heading=None)
    except ParseError:
        section = heading_section(text, "QUESTION", max_chars=MAX_QUESTION_CHARS)
        if not section:
            raise
        entries = [section]
    questions: list[str] = []
    rejected: list[tuple[str, str]] = []
    for entry in entries[:16]:
        try:
            if not isinstance(entry, dict | str):
                raise ParseError(f"entry is {type(entry).__name__}, not a question")
            obj = entry if isinstance(entry, dict) else {"question": entry}
            question = field_text(obj, "question", max_chars=MAX_QUESTION_CHARS) or ""
            if len(question) < MIN_QUESTION_CHARS:
                raise ParseError(f"question shorter than {MIN_QUESTION_CHARS} characters")
        except ParseError as exc:
            rejected.append((json.dumps(entry)[:200], exc.reason))
            continue
        if question in questions:
            rejected.append((question, "repeats a question of the same completion"))
        elif len(questions) >= count:
            rejected.append((question, f"over the {count} questions asked for (truncated)"))
        else:
            questions.append(question)
    if not questions:
        raise ParseError("no usable question in the completion")
    return questions, rejected
