"""Import existing datasets from JSONL files with a field mapping (GSM8K preset to start).

A malformed line, or a row missing a mapped field or an extractable answer, becomes a `Reject` naming the file
and line number; the rest of the file proceeds. A missing file is a `ConfigError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from engines.errors import ConfigError, did_you_mean
from synthesis.answers import last_boxed
from synthesis.problem import Problem, Reject, SourceResult

_MAX_LINE_BYTES = 1_000_000  # a larger line is rejected, not parsed


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which columns hold the question and answer, and how to get the final answer out of the answer column."""

    question: str = "question"
    answer: str = "answer"
    answer_rule: str = "after_hash"  # "after_hash" (GSM8K `#### 42`), "boxed" (last \boxed{}), "column"
    id_field: str | None = None


PRESETS: dict[str, FieldMapping] = {
    "gsm8k": FieldMapping(question="question", answer="answer", answer_rule="after_hash"),
    "math": FieldMapping(question="problem", answer="answer", answer_rule="column", id_field="unique_id"),
}
ANSWER_RULES = ("after_hash", "boxed", "column")
_HASH_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def mapping_for(preset: str | None, overrides: dict[str, str] | None = None) -> FieldMapping:
    base = FieldMapping()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown import preset {preset!r};" + did_you_mean(preset, PRESETS))
        base = PRESETS[preset]
    mapping = replace(base, **overrides) if overrides else base
    if mapping.answer_rule not in ANSWER_RULES:
        raise ConfigError(
            f"unknown answer_rule {mapping.answer_rule!r};" + did_you_mean(mapping.answer_rule, ANSWER_RULES)
        )
    return mapping


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


def import_jsonl(path: Path, *, source: str, mapping: FieldMapping, limit: int | None = None) -> SourceResult:
    """Read problems from a JSONL file; stop after `limit` problems (rejects don't count toward it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"import file {str(path)!r} does not exist")
    result = SourceResult()
    with open(path, "rb") as fh:
        for lineno, raw_line in enumerate(fh, start=1):
            if limit is not None and len(result.problems) >= limit:
                break
            ref = f"{path.name}:{lineno}"
            if len(raw_line) > _MAX_LINE_BYTES:
                result.rejects.append(Reject.create("import", ref, f"line longer than {_MAX_LINE_BYTES} bytes"))
                continue
            text = raw_line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            problem_or_reject = _row_to_problem(text, ref, source, mapping)
            if isinstance(problem_or_reject, Reject):
                result.rejects.append(problem_or_reject)
            else:
                result.problems.append(problem_or_reject)
    return result


def _row_to_problem(text: str, ref: str, source: str, mapping: FieldMapping) -> Problem | Reject:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        return Reject.create("import", ref, f"malformed JSON: {exc.msg} at column {exc.colno}", text)
    if not isinstance(row, dict):
        return Reject.create("import", ref, f"expected a JSON object, got {type(row).__name__}", text)
    for field in (mapping.question, mapping.answer):
        if field not in row:
            return Reject.create("import", ref, f"missing field {field!r}; the row has columns {sorted(row)}", text)
    question, answer_raw = row[mapping.question], row[mapping.answer]
    if not isinstance(question, str) or not question.strip():
        return Reject.create("import", ref, f"field {mapping.question!r} is not a non-empty string", text)
    extracted = _final_answer(str(answer_raw), mapping.answer_rule)
    if extracted is None:
        return Reject.create(
            "import",
            ref,
            f"no final answer found in {mapping.answer!r} by rule {mapping.answer_rule!r}",
            text,
        )
    answer, solution = extracted
    extra = {"original_id": str(row[mapping.id_field])} if mapping.id_field and mapping.id_field in row else {}
    return Problem.create(
        source=source,
        family=source,
        question=question,
        answer=answer,
        source_ref=ref,
        solution=solution,
        metadata=extra,
    )
