"""How one imported row becomes a problem: the field mapping, its presets and its rules.

A mapping names the columns that hold the question and the answer, or templates over several columns
(`question: "{Body} {Question}"`, SVAMP's shape: its question sentence is a column of its own). The answer
column then goes through three rules:
- `answer_rule` finds the final answer in the column's text: `after_hash` (GSM8K's `#### 42`), `boxed` (the last
  `\\boxed{}`), or `column` (the column as is);
- `list_answer` says what a list-valued answer becomes (OlympiadBench stores `["$2$"]`, MAWPS `[43.0]`): `only`
  (the default) takes a one-element list's element and rejects a longer list, naming the field, rather than
  guess; `first` takes the first element; `join` joins every element with ", " (the verifier reads that as a
  tuple). A JSON array of strings stored as text (a CSV cell `["2"]`) counts as a list; `[1, 2]` does not, since
  that is how an interval is written;
- `answer_unit`: `strip` (the default) cuts a trailing unit or parenthetical after a number (ASDiv's
  `9 (apples)`, `12 cm`) and `keep` leaves it. Only words without digits are cut, never a math word (`pi`,
  `sqrt`, `i`, a single letter) and never a word glued to the number, so `3 pi`, `5r^5`, `2 or 3` and
  `5 (mod 7)` stay as they are.
Whenever a rule changed the column's text, the original is kept in the problem's metadata as `raw_answer`.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, fields, replace
from typing import Any

from engines.errors import ConfigError, did_you_mean
from synthesis.answers import last_boxed
from synthesis.problem import Problem, Reject


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which columns hold the question and answer (a column name or a `{column}` template), and the rules that
    turn the answer column into a final answer."""

    question: str = "question"
    answer: str = "answer"
    answer_rule: str = "after_hash"  # "after_hash" (GSM8K `#### 42`), "boxed" (last \boxed{}), "column"
    id_field: str | None = None
    solution: str | None = None  # a column with the worked solution, when it is not the answer column itself
    list_answer: str = "only"  # "only", "first", "join": what a list-valued answer becomes
    answer_unit: str = "strip"  # "strip" or "keep" a unit/parenthetical after a numeric answer

    def columns(self) -> list[tuple[str, str]]:
        """(mapped role, column) for every column the mapping reads; a template reads each column it names."""
        pairs = [(role, column) for role in ("question", "answer") for column in _template_columns(getattr(self, role))]
        return pairs + [(role, column) for role in OPTIONAL_ROLES if (column := getattr(self, role))]


PRESETS: dict[str, FieldMapping] = {
    "gsm8k": FieldMapping(question="question", answer="answer", answer_rule="after_hash"),
    # MATH-500: problem / solution / answer / subject / level / unique_id
    "math": FieldMapping(
        question="problem", answer="answer", answer_rule="column", id_field="unique_id", solution="solution"
    ),
    # MATH test 5000: problem / level / type / solution / idx — no answer column; the answer is the last \boxed{}
    "math_solution": FieldMapping(question="problem", answer="solution", answer_rule="boxed", id_field="idx"),
}
CHOICES = {
    "answer_rule": ("after_hash", "boxed", "column"),
    "list_answer": ("only", "first", "join"),
    "answer_unit": ("strip", "keep"),
}
OPTIONAL_ROLES = ("id_field", "solution")  # an override of "" switches these off
_HASH_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_NUMBER = r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?"
_UNIT_AFTER_NUMBER = re.compile(
    rf"^(?P<number>{_NUMBER})(?:\s*\((?P<note>[^()\d]*)\)|\s+(?P<unit>[A-Za-z][A-Za-z./ ]*?(?:\^\d|²|³)?))\s*\.?$"
)
_MATH_WORDS = frozenset({"pi", "sqrt", "and", "or", "to", "inf", "infty", "infinity", "mod", "i", "e"})


def mapping_for(preset: str | None, overrides: dict[str, str] | None = None) -> FieldMapping:
    """A preset (or the default mapping) with `overrides` applied; a `ConfigError` names any unknown preset, key,
    rule or malformed template."""
    base = FieldMapping()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown import preset {preset!r};" + did_you_mean(preset, PRESETS))
        base = PRESETS[preset]
    overrides = dict(overrides or {})
    known = [f.name for f in fields(FieldMapping)]
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown field-mapping key {key!r};" + did_you_mean(key, known))
    for role in OPTIONAL_ROLES:
        if overrides.get(role) == "":
            overrides[role] = None  # type: ignore[assignment]
    mapping = replace(base, **overrides)
    for key, choices in CHOICES.items():
        value = getattr(mapping, key)
        if value not in choices:
            raise ConfigError(f"unknown {key} {value!r};" + did_you_mean(value, choices))
    for role in ("question", "answer"):
        _template_columns(getattr(mapping, role), role=role)  # raises on a malformed template
    return mapping


def _is_template(text: str) -> bool:
    return "{" in text or "}" in text


def _template_columns(text: str, *, role: str = "question") -> list[str]:
    """The columns a mapped value reads: itself when it has no `{`, else the fields of its template."""
    if not _is_template(text):
        return [text]
    return [column for literal, column in _template_parts(text, role) if column is not None]


def _template_parts(text: str, role: str) -> list[tuple[str, str | None]]:
    """A template as (literal text, column or None) pieces in order; plain `{column}` fields only, so a template
    can never reach attributes or indexes of a value."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ConfigError(f"the {role} template {text!r} is malformed: {exc}") from exc
    for _, column, spec, conversion in parsed:
        if column is not None and (not column or spec or conversion or any(c in column for c in ".[]")):
            raise ConfigError(
                f"the {role} template {text!r} has the field {{{column}}}; write plain column names, "
                "e.g. '{Body} {Question}' ('{{' and '}}' for literal braces)"
            )
    return [(literal, column) for literal, column, _, _ in parsed]


def map_row(
    row: dict[str, Any], ref: str, source: str, mapping: FieldMapping, raw_text: str | None = None
) -> Problem | Reject:
    """One row as a problem, or a reject naming the row and the field that could not be mapped."""

    def reject(reason: str) -> Reject:
        text = raw_text if raw_text is not None else json.dumps(row, ensure_ascii=False, default=str)
        return Reject.create("import", ref, reason, text)

    question = _mapped(row, mapping.question, "question")
    if isinstance(question, _Missing):
        return reject(question.reason)
    if not isinstance(question, str) or not question.strip():
        return reject(f"field {mapping.question!r} is not a non-empty string")
    raw_answer = _mapped(row, mapping.answer, "answer")
    if isinstance(raw_answer, _Missing):
        return reject(raw_answer.reason)
    answer_text = _list_answer(raw_answer, mapping)
    if isinstance(answer_text, _Missing):
        return reject(answer_text.reason)
    extracted = _final_answer(answer_text, mapping.answer_rule)
    if extracted is None:
        return reject(f"no final answer found in {mapping.answer!r} by rule {mapping.answer_rule!r}")
    answer, solution = extracted
    if mapping.solution and isinstance(row.get(mapping.solution), str) and row[mapping.solution].strip():
        solution = row[mapping.solution].strip()
    metadata: dict[str, object] = {}
    original_id = row.get(mapping.id_field) if mapping.id_field else None
    if original_id is not None:
        metadata["original_id"] = _as_text(original_id)
    column_text = _as_text(raw_answer)
    bare = strip_unit(answer) if mapping.answer_unit == "strip" else answer
    if answer_text != column_text:  # the list rule picked or joined elements: keep the list as stored
        metadata["raw_answer"] = column_text
    elif bare != answer:
        metadata["raw_answer"] = answer
    answer = bare
    return Problem.create(
        source=source,
        family=source,
        question=question,
        answer=answer,
        source_ref=ref,
        solution=solution,
        metadata=metadata or None,
    )


@dataclass(frozen=True, slots=True)
class _Missing:
    reason: str


def _mapped(row: dict[str, Any], column_or_template: str, role: str) -> Any:
    """A role's value: a column's own value (a list stays a list), or its template rendered to text."""
    return (
        _render(row, column_or_template, role) if _is_template(column_or_template) else _value(row, column_or_template)
    )


def _value(row: dict[str, Any], column: str) -> Any:
    """One column's value, or why the row has none."""
    if column not in row:
        return _Missing(f"missing field {column!r}; the row has columns {sorted(row)}")
    value = row[column]
    return _Missing(f"field {column!r} is null") if value is None else value


def _render(row: dict[str, Any], template: str, role: str) -> str | _Missing:
    """A template filled from the row; a missing, null or empty column is named."""
    pieces = []
    for literal, column in _template_parts(template, role):
        pieces.append(literal)
        if column is None:
            continue
        value = _value(row, column)
        if isinstance(value, _Missing):
            return value
        text = _as_text(value).strip()
        if not text:
            return _Missing(f"field {column!r} (in the {role} template) is empty")
        pieces.append(text)
    return "".join(pieces)


def _list_answer(value: Any, mapping: FieldMapping) -> str | _Missing:
    """The answer column's text, with a list-valued answer reduced by `mapping.list_answer`."""
    items = _as_list(value)
    if items is None:
        return _as_text(value)
    items = [_as_text(item).strip() for item in items if item is not None and _as_text(item).strip()]
    if not items:
        return _Missing(f"field {mapping.answer!r} is an empty list")
    if mapping.list_answer == "first" or len(items) == 1:
        return items[0]
    if mapping.list_answer == "join":
        return ", ".join(items)
    return _Missing(
        f"field {mapping.answer!r} holds {len(items)} answers {items[:4]}; set list_answer to 'first' or 'join'"
    )


def _as_list(value: Any) -> list[Any] | None:
    """A list-valued answer's elements: a real list, or a JSON array of strings stored as text."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str) and value.lstrip().startswith("[") and '"' in value:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return None


def strip_unit(answer: str) -> str:
    """A numeric answer without a trailing unit or parenthetical (`9 (apples)` -> `9`, `12 cm` -> `12`); any other
    answer as it is."""
    match = _UNIT_AFTER_NUMBER.match(answer.strip())
    if match is None:
        return answer
    words = re.findall(r"[a-z]+", (match.group("unit") or match.group("note") or "").lower())
    if match.group("unit") is not None and (len(words[0]) < 2 or any(w in _MATH_WORDS for w in words)):
        return answer
    return match.group("number")


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _final_answer(raw: str, rule: str) -> tuple[str, str | None] | None:
    """(final answer, solution text) or None when the rule finds no answer."""
    if rule == "column":
        return (raw.strip(), None) if raw.strip() else None
    if rule == "after_hash":
        match = _HASH_ANSWER.search(raw)
        if not match:
            return None
        return match.group(1).replace(",", "").strip(), raw[: match.start()].strip()
    boxed = last_boxed(raw)
    return (boxed, raw.strip()) if boxed else None
