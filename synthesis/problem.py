"""Typed records that flow through the pipeline: problems, verdicts and rejected inputs."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

VerdictLabel = Literal["correct", "wrong", "unparseable", "timeout", "error"]
VERDICTS: tuple[VerdictLabel, ...] = ("correct", "wrong", "unparseable", "timeout", "error")

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC and collapsed whitespace: the form a problem's identity is computed from."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def make_problem_id(question: str, answer: str) -> str:
    """sha256 of the normalized question and gold answer: the same problem from two sources is one problem."""
    text = normalize_text(question) + "\n" + normalize_text(answer)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    problem_id: str
    source: str  # where it came from: "procedural", "gsm8k", a file name, a synthesis method
    family: str  # the generator family or dataset name
    question: str
    answer: str  # the gold final answer, as text
    source_ref: str  # file:line, or family:seed:index — enough to find the input again
    solution: str | None = None
    difficulty_knob: int | None = None  # the generator's own difficulty setting, when it has one
    metadata: str = "{}"  # JSON object text; free-form per source, never parsed by the pipeline
    parent_id: str | None = None  # the problem a synthesized variant was written from
    generator_model: str | None = None  # which model wrote it (synthesized problems only)
    checks_passed: str | None = None  # JSON list of the checks a synthesized problem passed, e.g. ["agreement"]

    @staticmethod
    def create(
        *,
        source: str,
        family: str,
        question: str,
        answer: str,
        source_ref: str,
        solution: str | None = None,
        difficulty_knob: int | None = None,
        metadata: dict[str, object] | None = None,
        parent_id: str | None = None,
        generator_model: str | None = None,
        checks_passed: Sequence[str] | None = None,
    ) -> Problem:
        return Problem(
            problem_id=make_problem_id(question, answer),
            source=source,
            family=family,
            question=question.strip(),
            answer=answer.strip(),
            source_ref=source_ref,
            solution=solution,
            difficulty_knob=difficulty_knob,
            metadata=json.dumps(metadata or {}, sort_keys=True),
            parent_id=parent_id,
            generator_model=generator_model,
            checks_passed=json.dumps(list(checks_passed)) if checks_passed is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of checking one answer, with the reason a person can audit."""

    label: VerdictLabel
    reason: str
    extracted: str | None = None
    rule: str = ""  # which checker decided: "family:<name>", "numeric", "exact", "choice", "math_verify", …

    @property
    def is_correct(self) -> bool:
        return self.label == "correct"


@dataclass(frozen=True, slots=True)
class Reject:
    """An input that could not become a row, kept as a row itself: never silently dropped."""

    stage: str
    input_ref: str
    reason: str
    raw_text: str = ""

    @staticmethod
    def create(stage: str, input_ref: str, reason: str, raw_text: str = "") -> Reject:
        return Reject(stage, input_ref, reason, raw_text[:2000])


@dataclass(slots=True)
class SourceResult:
    """What a source produced: problems plus the inputs it had to reject."""

    problems: list[Problem] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def extend(self, other: SourceResult) -> None:
        self.problems.extend(other.problems)
        self.rejects.extend(other.rejects)
