"""Skills, the teacher's part (methods §7 STAT, He et al., arXiv 2510.10023): the prompts the teacher gets, and
parsers for what it writes back. The vocabulary they name skills from is `synthesis/skill_vocabulary.py`.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from synthesis.prompting import prompt_version, render
from synthesis.skill_vocabulary import MAX_DEFINITION_CHARS, MAX_NAME_CHARS, Skill, Vocabulary, slugify
from synthesis.structured import (
    MAX_TEXT_CHARS,
    ParseError,
    complete_objects,
    extract_json,
    field_text,
    heading_section,
)

LABEL_VERSION = "skills_teacher_v1"  # teacher labels and failure attributions; labeler = the teacher's model id
FAMILY_LABEL_VERSION = "family_v1"  # a procedural family's own skill tags (labeler "family")
GLAN_LABEL_VERSION = "glan_v1"  # a GLAN question's key concepts (labeler "glan")
STAT_SYN_LABEL_VERSION = "stat_syn_v1"  # a STAT-Syn problem's target skill (labeler "stat_syn")
KNOWN_LABELERS = ("family", "glan", "stat_syn")  # labels that need no model call, preferred over the teacher's

MAX_QUESTION_CHARS = 2_000
MIN_QUESTION_CHARS = 10  # "12^3 mod 5" is a question; "x = 3" is not


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


def parse_proposal(text: str, max_skills: int) -> tuple[list[Skill], list[tuple[str, str]]]:
    """The teacher's proposed skills: `{"skills": [{"name", "definition"}, ...]}` (or a list of such objects or
    of names). A completion cut off mid-list keeps its complete entries (the cut one is a rejected entry).
    Returns (skills, rejected entries with reasons); raises `ParseError` when nothing is usable."""
    rejected: list[tuple[str, str]] = []
    try:
        entries = _label_list(text, "skills")
    except ParseError as exc:
        # the complete entries inside the first list of a truncated completion (`{"skills": [{..}, {..}, {..`)
        entries = complete_objects(text, after="[", skip_broken=False, max_objects=64)
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
