"""GLAN (methods §9; Li et al., "Synthetic Data (Almost) from Scratch", arXiv 2402.13064): taxonomy → subjects
→ syllabus → homework questions → answers.

Pure parts only — the config, prompts and reply parsers here, the concept-combination sampler in
`synthesis/glan_combinations.py`; the stages that call the teacher live in `scoring/stages/glan.py`, taxonomy
files and their loader in `synthesis/taxonomies/`.

Format: the paper asks for free text and converts it to JSON in a second call, because asking for the format
in the same call lowered quality (§2.2). We ask for JSON at once (one call per item instead of two, and small
local models follow a JSON example more reliably than a later conversion), close replies that the token cap cut
off (small models often run a list away until the cap), salvage the complete entries of broken JSON, and only
when nothing parses make the paper's second "convert to JSON" call (`json_repair`, in the stage).

GLAN itself is generic (any discipline), but our answers are checked by a verifier of final answers, so the
homework prompt asks for a question with one short final answer (a number or an expression).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from synthesis.answers import extract_final_answer
from synthesis.prompting import render
from synthesis.structured import ParseError, close_truncated, complete_objects, extract_json, heading_section
from synthesis.taxonomies import DEFAULT_TAXONOMY, Discipline

TEACHER_TAXONOMY = "teacher"  # `taxonomy: teacher` asks the teacher to decompose `teacher_fields`
MAX_CONCEPTS = 5  # paper §2.4: 1–5 key concepts per homework question
MAX_NAME_CHARS = 200
MAX_ENTRIES = 64  # entries read from one reply; a runaway list is cut, not parsed whole

T = TypeVar("T")


class GlanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run GLAN in the synthesis job")
    taxonomy: str | None = Field(
        None,
        description="a YAML taxonomy file (fields → sub-fields → disciplines), a shipped taxonomy's name "
        f"(default {DEFAULT_TAXONOMY!r}), or {TEACHER_TAXONOMY!r} to have the teacher decompose `teacher_fields`",
    )
    teacher_fields: tuple[str, ...] = Field(
        ("Mathematics",), min_length=1, description="fields the teacher decomposes when taxonomy is 'teacher'"
    )
    disciplines: int = Field(2, ge=1, description="disciplines kept from the taxonomy (seeded sample)")
    subject_calls: int = Field(1, ge=1, le=16, description="subject-listing calls per discipline (paper: 10)")
    subjects_per_discipline: int = Field(2, ge=1)
    sessions_per_subject: int = Field(3, ge=1, le=30, description="class sessions per syllabus (paper: 10–30)")
    concepts_per_session: int = Field(5, ge=1, le=10, description="key concepts per session (paper: ~5)")
    questions: int = Field(8, ge=1, description="homework questions to write")
    two_session_share: float = Field(0.5, ge=0.0, le=1.0, description="share of questions spanning two sessions")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="paper: T 1.0, top-p 0.95")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    answer_temperature: float = Field(0.7, ge=0.0, le=2.0, description="paper: answers at T 0.7")
    list_max_tokens: int = Field(768, ge=16, description="token cap of taxonomy, subject and syllabus replies")
    question_max_tokens: int = Field(256, ge=16)
    answer_max_tokens: int = Field(512, ge=16)
    json_repair: bool = Field(True, description="a second 'convert to JSON' call when a list reply does not parse")
    seed: int = 0


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from a hash of `parts` (never `seed + index`, where seeds of neighbours collide)."""
    digest = hashlib.sha256(json.dumps(["glan", *parts], default=str).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def select_disciplines(disciplines: Sequence[Discipline], n: int, seed: int) -> list[Discipline]:
    """A seeded sample of `n` disciplines (all of them when there are fewer), kept in taxonomy order."""
    if n >= len(disciplines):
        return list(disciplines)
    chosen = set(random.Random(derive_seed(seed, "disciplines")).sample(range(len(disciplines)), n))
    return [d for i, d in enumerate(disciplines) if i in chosen]


# ---- prompts ---------------------------------------------------------------------------------------------------

DISCIPLINES_FORMAT = '[{"sub_field": "...", "disciplines": ["...", "..."]}]'
SUBJECTS_FORMAT = '[{"subject_name": "...", "level": "...", "subtopics": ["...", "..."]}]'
SYLLABUS_FORMAT = '{"sessions": [{"title": "...", "key_concepts": ["...", "..."]}]}'


@dataclass(frozen=True, slots=True)
class CourseSession:
    idx: int  # 1-based session number in the syllabus
    title: str
    key_concepts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Course:
    """One subject's syllabus, the unit homework questions are written from."""

    discipline: str
    subject: str
    level: str
    sessions: tuple[CourseSession, ...]


def disciplines_prompt(field_name: str, count: int) -> str:
    return render("glan_disciplines", field=field_name, count=count, format=DISCIPLINES_FORMAT)


def subjects_prompt(discipline: str, count: int) -> str:
    """§2.2: the teacher as an education expert of `discipline` lists subjects with a level and subtopics."""
    return render("glan_subjects", discipline=discipline, count=count, format=SUBJECTS_FORMAT)


def syllabus_prompt(
    discipline: str, subject: str, level: str, subtopics: Sequence[str], sessions: int, concepts: int
) -> str:
    """§2.3: one call per subject → class sessions with their key concepts."""
    return render(
        "glan_syllabus",
        discipline=discipline,
        subject=subject,
        level=level,
        subtopics=list(subtopics),
        sessions=sessions,
        concepts=concepts,
        format=SYLLABUS_FORMAT,
    )


def question_prompt(course: Course, concepts: Sequence[str], session_numbers: Sequence[int]) -> str:
    """§2.4: the chosen key concepts plus the full syllabus → one homework question with a short final answer."""
    return render("glan_question", course=course, concepts=list(concepts), session_numbers=list(session_numbers))


def answer_prompt(question: str) -> str:
    """§3.1: the answer is written in a separate call (separating question and answer gave better quality)."""
    return render("glan_answer", question=question)


def to_json_prompt(text: str, format_example: str) -> str:
    """The paper's second call: turn a free-text reply into the JSON form."""
    return render("glan_to_json", text=text, format=format_example)


# ---- reply parsers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    level: str
    subtopics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Session:
    title: str
    key_concepts: tuple[str, ...]


@dataclass(slots=True)
class Parsed(Generic[T]):
    """The valid entries of a reply; `how` is "json", "repaired" (a reply cut off by the token cap, closed at its
    last complete element) or "salvaged" (the complete entries of broken JSON); `skipped` holds one reason per
    entry that was left out."""

    items: list[T]
    how: str
    skipped: list[str] = field(default_factory=list)


def _name(value: object, what: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"missing or empty {what}")
    value = " ".join(value.split()).strip("*#` ")
    if len(value) > MAX_NAME_CHARS:
        raise ParseError(f"{what} longer than {MAX_NAME_CHARS} characters")
    if not value:
        raise ParseError(f"missing or empty {what}")
    return value


def _names(value: object, what: str) -> tuple[str, ...]:
    """A list of distinct non-empty names (case-insensitive), in order; a bare string is one name."""
    if value is None:
        raise ParseError(f"missing {what}")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ParseError(f"{what} is not a list")
    out: dict[str, str] = {}
    for item in value[:MAX_ENTRIES]:
        try:
            name = _name(item, what)
        except ParseError:
            continue
        out.setdefault(name.casefold(), name)
    if not out:
        raise ParseError(f"no {what}")
    return tuple(out.values())


def _first(entry: dict, keys: Sequence[str]) -> object:
    return next((entry[k] for k in keys if k in entry), None)


def _entry_dicts(value: object, list_key: str) -> list[dict]:
    if isinstance(value, dict) and isinstance(value.get(list_key), list):
        value = value[list_key]
    return [e for e in value if isinstance(e, dict)][:MAX_ENTRIES] if isinstance(value, list) else []


def _entries(text: str, list_key: str, entry_key: Sequence[str]) -> tuple[list[dict], str]:
    """The entry objects of a reply, and how they were found: "json" (`{"<list_key>": [...]}` or a bare list),
    "repaired" (a value cut off by the token cap, closed at its last complete element) or "salvaged" (the
    complete objects carrying one of `entry_key` in otherwise broken JSON). `ParseError` when none is there."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    text = text[:20_000]
    outer: dict | None = None
    try:
        outer = extract_json(text, expect=dict)
        if entries := _entry_dicts(outer, list_key):
            return entries, "json"
    except ParseError:
        pass
    try:
        if entries := _entry_dicts(extract_json(text, expect=list), list_key):
            return entries, "json"
    except ParseError:
        pass
    if entries := _entry_dicts(close_truncated(text), list_key):
        return entries, "repaired"
    salvaged = [o for o in complete_objects(text) if any(k in o for k in entry_key)]
    if salvaged:
        return salvaged[:MAX_ENTRIES], "salvaged"
    if outer is not None:
        raise ParseError(f"JSON without a list of {list_key}")
    extract_json(text, expect=list)  # raises the precise reason (prose, truncated, malformed)
    raise ParseError(f"no {list_key} entries in the JSON list")


def _collect(entries: list[dict], how: str, build: Callable[[dict], T], what: str) -> Parsed[T]:
    parsed: Parsed[T] = Parsed([], how)
    seen: set[str] = set()
    for entry in entries:
        try:
            item = build(entry)
        except ParseError as exc:
            parsed.skipped.append(exc.reason)
            continue
        key = (getattr(item, "name", None) or getattr(item, "title", None) or str(item)).casefold()
        if key in seen:
            parsed.skipped.append(f"duplicate {what}")
            continue
        seen.add(key)
        parsed.items.append(item)
    if not parsed.items:
        reasons = sorted(set(parsed.skipped)) or ["no entries"]
        raise ParseError(f"no valid {what}: " + "; ".join(reasons[:3]))
    return parsed


_SUB_FIELD_KEYS = ("sub_field", "subfield", "sub-field", "name")
_SUBJECT_KEYS = ("subject_name", "subject", "name", "title")
_TITLE_KEYS = ("title", "session_title", "topic", "name", "session")
_CONCEPT_KEYS = ("key_concepts", "concepts", "keyConcepts", "key concepts")


def parse_disciplines(text: str) -> Parsed[tuple[str, str]]:
    """A teacher's decomposition of a field: `(sub_field, discipline)` pairs, one per listed discipline."""
    entries, how = _entries(text, "sub_fields", _SUB_FIELD_KEYS)
    pairs: list[dict] = []
    for entry in entries:
        names = entry.get("disciplines", entry.get("discipline"))
        for name in names if isinstance(names, list) else [names]:
            pairs.append({"sub_field": _first(entry, _SUB_FIELD_KEYS), "discipline": name})
    parsed: Parsed[tuple[str, str]] = _collect(
        pairs, how, lambda e: (_name(e["sub_field"], "sub_field"), _name(e["discipline"], "discipline")), "discipline"
    )
    return parsed


def _subject(entry: dict) -> Subject:
    level = _first(entry, ("level", "difficulty", "grade"))
    return Subject(
        _name(_first(entry, _SUBJECT_KEYS), "subject_name"),
        _name(level, "level") if level else "unspecified",
        _optional_names(_first(entry, ("subtopics", "topics", "sub_topics"))),
    )


def _optional_names(value: object) -> tuple[str, ...]:
    """Subtopics help the syllabus prompt but are not needed: missing or malformed ones become none."""
    try:
        return _names(value, "subtopics") if value is not None else ()
    except ParseError:
        return ()


def parse_subjects(text: str) -> Parsed[Subject]:
    """§2.2 reply → subjects `{subject_name, level, subtopics}`; entries without a name are skipped (a missing
    level becomes "unspecified", missing subtopics none)."""
    entries, how = _entries(text, "subjects", _SUBJECT_KEYS)
    return _collect(entries, how, _subject, "subjects")


def _session(entry: dict) -> Session:
    return Session(
        _name(_first(entry, _TITLE_KEYS), "session title"), _names(_first(entry, _CONCEPT_KEYS), "key_concepts")
    )


def parse_syllabus(text: str) -> Parsed[Session]:
    """§2.3 reply → class sessions with their key concepts; sessions without concepts are skipped."""
    entries, how = _entries(text, "sessions", _CONCEPT_KEYS)
    return _collect(entries, how, _session, "sessions")


_AFTER_QUESTION = re.compile(
    r"^[#*\s]*(?:answer|solution|hint|explanation|final answer|steps?|note)\b[*\s]*:", re.IGNORECASE | re.MULTILINE
)
_PREAMBLE = re.compile(r"^\s*(?:[*#]+\s*)?(?:homework\s+)?question\s*\d*\s*[*:]+\s*", re.IGNORECASE)
MIN_QUESTION_CHARS, MAX_QUESTION_CHARS = 20, 2_000


def parse_question(text: str, finish_reason: str = "stop") -> str:
    """§2.4 reply → the homework question: the text after a `QUESTION:` heading (or a JSON "question" field, or
    the whole reply), cut before any answer/solution section. `ParseError` when empty, cut off by the token cap
    (`finish_reason == "length"`: its end, often what it asks for, is missing), too short or too long, or when
    it gives its own answer away (`\\boxed`)."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    if finish_reason == "length":
        raise ParseError("truncated at the token cap")
    question = heading_section(text, "QUESTION", max_chars=MAX_QUESTION_CHARS * 2)
    if question is None:
        try:
            question = str(extract_json(text, expect=dict).get("question") or "") or None
        except ParseError:
            question = None
    question = (question or text).strip()
    cut = _AFTER_QUESTION.search(question)
    if cut:
        question = question[: cut.start()]
    question = _PREAMBLE.sub("", question).strip().strip('"').strip()
    if len(question) < MIN_QUESTION_CHARS:
        raise ParseError(f"question shorter than {MIN_QUESTION_CHARS} characters")
    if len(question) > MAX_QUESTION_CHARS:
        raise ParseError(f"question longer than {MAX_QUESTION_CHARS} characters")
    if "\\boxed" in question:
        raise ParseError("question contains a boxed answer")
    return question


def parse_reference_answer(text: str) -> str:
    """§3.1 reply → the teacher's final answer: the last `\\boxed{}` or an explicit "the answer is …"; a bare
    last number is not trusted as the reference (it is often an intermediate step of a cut-off solution)."""
    if not text or not text.strip():
        raise ParseError("empty completion")
    found = extract_final_answer(text)
    if found is None or found.method not in ("boxed", "answer_is") or not found.text:
        raise ParseError("no boxed or stated final answer")
    return found.text
