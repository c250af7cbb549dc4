"""GLAN level 3 as a stage (methods §9; Li et al., arXiv 2402.13064 §2.4 and §3.1): homework questions from
sampled key-concept combinations of the `glan_syllabus` table, answered by the teacher and kept when independent
solutions agree. Levels 1 and 2 (taxonomy, subjects, syllabus) are in `scoring.stages.glan`.

Every question, answer and agreement decision is a `synthesis_log` row (method `glan`); accepted problems go to
`synthesized_problems`. All calls go to the teacher and are cached, so a rerun makes zero model calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from engines import ChatRequest, Completion, Engine
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement, check_answers
from scoring.grading.verify import Verifier
from scoring.stages.glan import Row, request
from scoring.stages.report import (
    PREVIEW_ROWS,
    CostMeter,
    StageSummary,
    markdown_table,
    synthesis_markdown,
    tokens_per_kept,
)
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from synthesis import glan
from synthesis.glan import Course, CourseSession, GlanConfig, derive_seed
from synthesis.glan_combinations import ConceptCombo, sample_combinations
from synthesis.problem import Problem
from synthesis.prompting import prompt_version
from synthesis.structured import ParseError


def load_courses(table: pa.Table) -> list[Course]:
    """`glan_syllabus` rows grouped into courses (first-seen order), sessions by `session_idx`. A session whose
    concept list was emptied by an edit stays in the syllabus shown to the teacher but is never sampled."""
    grouped: dict[tuple[str, str], list[Row]] = {}
    for row in table.to_pylist():
        grouped.setdefault((row["discipline"], row["subject"]), []).append(row)
    courses = []
    for (discipline, subject), rows in grouped.items():
        rows.sort(key=lambda r: (r["session_idx"] is None, r["session_idx"] or 0))
        sessions = tuple(
            CourseSession(
                r["session_idx"] or i + 1, r["session_title"] or "", tuple(c for c in r["key_concepts"] or [] if c)
            )
            for i, r in enumerate(rows)
        )
        courses.append(Course(discipline, subject, rows[0]["level"] or "unspecified", sessions))
    return courses


@dataclass(slots=True)
class Candidate:
    """One homework question on its way through the checks."""

    combo_id: str  # a stable id of its inputs (course, sessions, concept texts): the log's item id
    course: Course
    concepts: list[str]
    sessions: list[int]
    question: str = ""
    answer: str = ""
    solution: str = ""

    @staticmethod
    def of(course: Course, combo: ConceptCombo) -> Candidate:
        concepts, sessions = combo.concepts(course), combo.session_numbers(course)
        key = json.dumps([course.discipline, course.subject, sessions, concepts], ensure_ascii=False)
        return Candidate("glan-" + hashlib.sha256(key.encode()).hexdigest()[:16], course, concepts, sessions)


def _log_call(record: SynthesisRecord, stage: str, cand: Candidate, c: Completion, reason: str, model: str) -> None:
    kept = reason == "parsed"
    record.decide(
        stage,
        cand.combo_id,
        kept=kept,
        reason=reason,
        text=c.text,
        model=model,
        prompt_version=prompt_version(f"glan_{stage}"),
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        detail={"subject": cand.course.subject, "sessions": cand.sessions, "key_concepts": cand.concepts},
    )


def _questions(
    cfg: GlanConfig, engine: Engine, cands: list[Candidate], record: SynthesisRecord, progress: bool
) -> list[Candidate]:
    """§2.4: one homework question per concept combination; parsed ones go on."""
    sampling = {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.question_max_tokens}
    requests = [
        request(glan.question_prompt(c.course, c.concepts, c.sessions), seed=derive_seed(cfg.seed, "q", i), **sampling)
        for i, c in enumerate(cands)
    ]

    def fill(cand: Candidate, c: Completion) -> None:
        cand.question = glan.parse_question(c.text, c.finish_reason)

    return _ask_each(engine, cands, requests, "question", fill, record, progress)


def _answers(
    cfg: GlanConfig, engine: Engine, cands: list[Candidate], record: SynthesisRecord, progress: bool
) -> list[Candidate]:
    """§3.1: the teacher answers each question in a separate call (T `answer_temperature`)."""
    sampling = {"temperature": cfg.answer_temperature, "top_p": cfg.top_p, "max_tokens": cfg.answer_max_tokens}
    requests = [
        request(glan.answer_prompt(c.question), seed=derive_seed(cfg.seed, "a", c.combo_id), **sampling) for c in cands
    ]

    def fill(cand: Candidate, c: Completion) -> None:
        try:
            cand.answer, cand.solution = glan.parse_reference_answer(c.text), c.text
        except ParseError as exc:
            if c.finish_reason != "length":
                raise
            raise ParseError(exc.reason + " (truncated at answer_max_tokens)") from exc

    return _ask_each(engine, cands, requests, "answer", fill, record, progress)


def _ask_each(
    engine: Engine,
    cands: list[Candidate],
    requests: list[ChatRequest],
    stage: str,
    fill: Callable[[Candidate, Completion], None],
    record: SynthesisRecord,
    progress: bool,
) -> list[Candidate]:
    """One teacher call per candidate; `fill` parses the reply into its candidate or raises `ParseError`. Every
    call is logged (stage `stage`); the candidates whose reply parsed are returned."""
    kept = []
    for cand, (c,) in zip(cands, engine.generate(requests, progress=progress, desc=f"glan_{stage}"), strict=True):
        reason = "parsed"
        try:
            if not c.ok:
                raise ParseError(f"engine error: {c.error}")
            fill(cand, c)
            kept.append(cand)
        except ParseError as exc:
            reason = exc.reason
        _log_call(record, stage, cand, c, reason, engine.model_id)
    return kept


def _agreements(config: ProjectConfig, engine: Engine, cands: list[Candidate], progress: bool) -> list[Agreement]:
    """The shared answer check: independent solutions must agree with the teacher's answer (the reference)."""
    if not cands:
        return []
    with Verifier(config.verify) as verifier:
        return check_answers(
            [(c.question, c.answer) for c in cands],
            engine,
            verifier,
            config.synthesis.answers,
            seed=derive_seed(config.synthesis.glan.seed, "agreement"),
            progress=progress,
        )


def _problem(cand: Candidate, place: Row, model: str) -> Problem:
    return Problem.create(
        source="glan",
        # Prefixed so that a discipline never collides with a procedural family's name: the verifier hands a
        # problem whose family is registered to that family's own scorer.
        family=f"glan:{cand.course.discipline}",
        question=cand.question,
        answer=cand.answer,
        source_ref=f"glan:{cand.combo_id}",
        solution=cand.solution,
        metadata={
            "field": place.get("field"),
            "sub_field": place.get("sub_field"),
            "discipline": cand.course.discipline,
            "subject": cand.course.subject,
            "level": cand.course.level,
            "session_idx": cand.sessions,
            "key_concepts": cand.concepts,
            "n_sessions_sampled": len(cand.sessions),
            "question_generator": model,
            "answer_generator": model,
        },
        generator_model=model,
        checks_passed=["question_parse", "answer_parse", "agreement"],
    )


def build_glan_problems(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """GLAN §2.4 and §3.1 on the `glan_syllabus` TABLE (so edits there count): sample concept combinations (one
    session, or two sessions touching both, per `two_session_share`), have the teacher write a homework question
    from the chosen concepts and the full syllabus (T 1.0, top-p 0.95), answer it in a separate call (T 0.7),
    and accept the problem only when the shared agreement check (`check_answers`, with the teacher's answer as
    the reference) agrees. The question prompt asks for one short final answer, because answers are verified."""
    cfg, engine = config.synthesis.glan, roles.teacher
    meter, record = CostMeter(engine), SynthesisRecord("glan")
    courses = load_courses(root.read_table("glan_syllabus"))
    places = {r["discipline"]: r for r in root.read_table("glan_disciplines").to_pylist()}
    combos = sample_combinations(courses, cfg.questions, cfg.two_session_share, cfg.seed)
    cands = [Candidate.of(courses[combo.course], combo) for combo in combos]
    questions = _questions(cfg, engine, cands, record, progress)
    answered = _answers(cfg, engine, questions, record, progress)
    agreements = _agreements(config, engine, answered, progress)
    for cand, agreement in zip(answered, agreements, strict=True):
        problem = _problem(cand, places.get(cand.course.discipline, {}), engine.model_id)
        record.decide(
            "agreement",
            problem.problem_id,
            kept=agreement.accepted,
            reason=agreement.reason,
            text=cand.question,
            parent_id=cand.combo_id,
            model=engine.model_id,
            detail=agreement.detail(),
        )
        if agreement.accepted:
            record.accept(problem)
    _, table = record.write(root)
    counts = {
        "requested": cfg.questions,
        "combinations": len(combos),
        "questions_parsed": len(questions),
        "answers_parsed": len(answered),
        "agreed": sum(a.accepted for a in agreements),
        "kept": table.num_rows,
    }
    # Question and answer tokens as logged (cached or not, so a rerun reports the same figure); the agreement
    # check's solutions show in the engine stats of the run that drew them.
    figures = meter.figures() | {"tokens_per_kept_problem": tokens_per_kept(record.tokens(), table.num_rows)}
    preview = markdown_table(table.to_pylist()[:PREVIEW_ROWS], ("family", "question", "answer"))
    path = root.table_path("synthesized_problems", synth_partition("glan"))
    return StageSummary(table, counts, figures, path, markdown=synthesis_markdown(record, preview))
